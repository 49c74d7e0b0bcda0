"""A verdict on models that learned the task only partly is marked in every report, and a p-value that
cannot reach alpha at its seed count says so (issue 35, item 5)."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from scipy import stats

from pytest_kernelbias import TrainConfig, run_audit, synthfaces
from pytest_kernelbias.analysis._effects import paired_effect
from pytest_kernelbias.reporting._html import render_html
from pytest_kernelbias.reporting._markdown import render_markdown
from pytest_kernelbias.reporting._text import MARKS, summary_lines

from .conftest import tiny_cnn


@pytest.fixture(scope="module")
def guessing():
    """One epoch on 300 images: the models stay near chance, so they learned the task only partly."""
    result = run_audit(tiny_cnn, "0", [3, 5], data=synthfaces(300, 0, "planted"), seeds=2, progress=None,
                       test_data=synthfaces(240, 0, "planted", split="test"), require_learning=False,
                       train_config=TrainConfig(epochs=1, batch_size=32), min_group_size=5, workers=1, placebos=())
    record = json.loads(json.dumps({**result.to_dict(), "test": "t.py::test_guess", "test_outcome": "passed"},
                                   default=str))
    return result, record


def _learned(record: dict) -> dict:
    """The same record as if every model had learned: no note, no mark."""
    effects = [{**e, "learned_partly": False} for e in record["effects"]]
    return {**record, "learning_note": None, "effects": effects}


def test_the_json_record_marks_the_verdict_and_says_why(guessing):
    result, record = guessing
    weak = [m for m in result.learning if m.score - m.chance < 0.05 or m.weak_groups()]
    assert record["learning_note"].startswith(f"{len(weak)} of {len(result.learning)} models learned the task only")
    assert all(e["learned_partly"] for e in record["effects"])


def test_the_terminal_row_stars_the_verdict_and_the_audit_line_says_why(guessing):
    _, record = guessing
    lines = summary_lines([record])
    row = next(line for line in lines if line.startswith("  kernel_size=5"))
    assert any(cell.endswith("*") and cell.rstrip("*") in ("pass", "warn", "undecided", "fail") for cell in row.split())
    assert any(line.startswith("  * ") and "learned the task only partly" in line for line in lines)
    assert lines[-1] == MARKS
    plain = summary_lines([_learned(record)])
    assert not any(line.startswith("  * ") for line in plain)
    assert not any(c.endswith("*") for line in plain if line.startswith("  kernel_size=") for c in line.split())


def test_markdown_and_html_cards_mark_it_too(guessing):
    _, record = guessing
    assert "(models learned partly)" in render_markdown([record]) and "learned the task only partly" in \
        render_markdown([record])
    assert "(models learned partly)" not in render_markdown([_learned(record)])
    html = render_html([record], {}, {})
    assert "<b>Models learned partly.</b>" in html
    assert "<b>Models learned partly.</b>" not in render_html([_learned(record)], {}, {})


def _smallest_sign_flip_p(n: int) -> float:
    """Computed another way: scipy's exact sign-flip test over every pattern, on distinct same-sign values."""
    d = np.array([2.0 ** -k for k in range(n)])
    return float(stats.permutation_test((d,), np.mean, permutation_type="samples", n_resamples=np.inf).pvalue)


@pytest.mark.parametrize("n", [2, 3, 5, 6])
def test_the_p_floor_is_the_smallest_p_the_seeds_allow_and_is_marked_above_alpha(n):
    e = paired_effect(np.arange(1.0, n + 1), np.zeros(n), p_method="permutation")
    assert e.p_floor == pytest.approx(_smallest_sign_flip_p(n))
    marked = e.p_floor > e.alpha
    assert bool(e.p_note()) == marked and marked == (n <= 5)  # 2/2^5 = 0.0625 > 0.05; 2/2^6 < 0.05
    if marked:
        assert f"{n} seeds allow no exact sign-flip p below {e.p_floor:.3g}" in e.p_note()


def test_a_row_shows_its_p_as_unable_to_reach_alpha(guessing):
    _, record = guessing
    row = next(line for line in summary_lines([record]) if line.startswith("  kernel_size=5"))
    assert "0.5°" in row.split() or any(c.endswith("°") for c in row.split())
    assert all(e["p_floor"] == 0.5 for e in record["effects"])  # two seeds: 2 / 2^2
    assert all("2 seeds allow no exact sign-flip p below 0.5" in e["note"] for e in record["effects"])


def test_sign_patterns_enumerated_match_the_floor():
    for n in (2, 3, 4):
        sums = [abs(sum(s * 2.0 ** -k for k, s in enumerate(signs))) for signs in itertools.product((-1, 1), repeat=n)]
        observed = sum(2.0 ** -k for k in range(n))
        assert np.mean([s >= observed - 1e-12 for s in sums]) == pytest.approx(paired_effect(
            np.arange(1.0, n + 1), np.zeros(n), p_method="permutation").p_floor)
