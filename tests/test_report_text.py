"""The terminal summary fits 120 columns, wraps long test ids at their separators and ends with a verdict
legend (issue 15)."""

import pytest

from pytest_kernelbias import LowPass, TrainConfig, run_audit, synthfaces
from pytest_kernelbias.reporting._text import LEGEND, MARKS, WIDTH, summary_lines, wrap_id

from .conftest import tiny_cnn

LONG_ID = ("example_audits/test_synthfaces_audits.py::test_planted_synthfaces_kernel_bias_is_caught"
           "[mobilenetv3_small_050-blocks.0.0.conv_dw-LowPass(0.4)-seeds=6-threshold=0.05]")


@pytest.fixture(scope="module")
def result():
    return run_audit(tiny_cnn, "0", [3, 5, 7], data=synthfaces(300, 0, "planted"),
                     test_data=synthfaces(240, 0, "planted", split="test"), perturbation=LowPass.sweep([0.6, 0.4]),
                     seeds=2, train_config=TrainConfig(epochs=1, batch_size=32), progress=None,
                     require_learning=False, min_group_size=5, workers=1)


def test_summary_fits_120_columns_with_a_long_test_id_and_a_long_perturbation_name(result):
    long = {**result.to_dict(), "test": LONG_ID, "test_outcome": "xfailed"}
    for e in long["effects"]:  # a perturbation label as long as a user's own transform's repr can be
        e["perturbation"] = f"GaussianBlur(sigma=1.5, kernel=7, mode='reflect', after={e['perturbation']})"
    short = {**result.to_dict(result.judge(threshold=10.0)), "test": "tests/test_a.py::test_stem",
             "test_outcome": "passed"}
    lines = summary_lines([short, long])
    assert max(len(line) for line in lines) <= WIDTH
    assert lines[0].split() == ["level", "k", "perturbation", "effect", "CI", "p", "p", "adj", "verdict", "gap",
                                "at", "k0", "[CI]", "clean", "acc", "k"]
    start = lines.index("tests/test_a.py::test_stem")
    assert lines[start + 1].startswith("  passed; k0 = kernel_size=3 (clean acc ")
    row = next(line for line in lines[start + 2:] if line.startswith("  kernel_size="))  # after the wrapped context
    assert row.split()[:2] == ["kernel_size=5", "LowPass(0.6)"] and "pass*" in row.split()  # these models guess
    # The long id on lines of its own, broken after its separators, continued with an indent.
    first = next(i for i, line in enumerate(lines) if line.startswith("example_audits/"))
    wrapped = [lines[first]] + [line.strip() for line in lines[first + 1:] if line.startswith("    ")][:1]
    assert "".join(wrapped) == LONG_ID and lines[first][-1] in "/:[-_"
    assert "xfailed; k0 = kernel_size=3" in " ".join(lines[first:])


def test_a_verdict_legend_follows_the_table_and_warned_rows_carry_their_note(result):
    # Just above the largest estimate: every effect passes, and those whose CI reaches past it warn.
    threshold = max(abs(e.estimate) for e in result.all_effects.values()) + 1e-4
    warned = {**result.to_dict(result.judge(threshold=threshold, rule="estimate")), "test": "t.py::test_warned",
              "test_outcome": "passed"}
    lines = summary_lines([warned])
    assert LEGEND in lines[-2:] and lines.count(LEGEND) == 1 and len(LEGEND) <= WIDTH and len(MARKS) <= WIDTH
    assert lines[-1] == MARKS  # two seeds: the sign-flip p cannot go below 0.5, and these models guess
    assert all(f"{word} =" in LEGEND for word in ("pass", "warn", "fail", "error"))
    for i, line in enumerate(lines):
        if line.startswith("    warn: passed; "):  # right under the row it is about
            assert " warn* " in f" {lines[i - 1]} " and lines[i - 1].startswith("  kernel_size=")
    notes = [e for e in warned["effects"] if e["note"]]
    assert notes  # two seeds: wide intervals, so some effect passes with a warning
    assert sum(line.startswith("    warn: passed; ") for line in lines) == len(notes)


def test_wrap_id_cuts_inside_a_part_only_when_the_part_alone_is_too_long():
    assert wrap_id("a.py::test_x", 120) == ["a.py::test_x"]
    assert wrap_id("pkg/mod.py::test_one_two", 16) == ["pkg/mod.py::", "    test_one_two"]
    lines = wrap_id("x" * 30, 12)
    assert all(len(line) <= 12 for line in lines) and "".join(line.strip() for line in lines) == "x" * 30


@pytest.mark.parametrize("stopped_at,expected", [(3, "(seeds=auto 3-4: undecided, futility)"),
                                                 (4, "(seeds=auto 3-4: undecided)")])
def test_the_audit_line_says_when_futility_ended_a_sequential_audit(result, stopped_at, expected):
    sequential = {"decision": "undecided", "min_seeds": 3, "max_seeds": 4,
                  "looks": [{"seeds": n} for n in range(3, stopped_at + 1)],
                  "stopped_for": "futility" if stopped_at < 4 else "max_seeds"}
    audit = {**result.to_dict(), "test": "t.py::test_auto", "test_outcome": "xfailed", "sequential": sequential}
    lines = summary_lines([audit])
    start = next(i for i, line in enumerate(lines) if line.startswith("  xfailed; k0 = "))
    # The audit line wraps at 120 columns; the sequential note ends it, maybe on the next line.
    joined = " ".join(line.strip() for line in lines[start:start + 2])
    assert expected in joined and joined.count("seeds=auto") == 1
