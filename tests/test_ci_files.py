"""The files a CI merge gate reads and writes: strict JSON, Markdown that shows what it was given as text, JUnit
properties XML can hold, baselines read as untrusted input, and the baseline flow of a pull request (a new
audit is new, not failed; a removed one is listed; a merge save adds new audits and says what it wrote)."""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET

import pytest

from pytest_kernelbias.errors import BaselineWarning
from pytest_kernelbias.reporting._baseline import MAX_BYTES, load_baseline, write_baseline
from pytest_kernelbias.reporting._json import write_json
from pytest_kernelbias.reporting._markdown import render_markdown
from pytest_kernelbias.reporting._records import xml_safe

from .test_reports_safety import CHEAP_AUDIT

ROW = {"effect": 0.1, "ci_low": 0.0, "ci_high": 0.2, "p_value": 0.5, "n": 3}


def _strict(text: str) -> object:
    def refuse(name):
        raise ValueError(f"not strict JSON: {name}")
    return json.loads(text, parse_constant=refuse)


def test_the_json_report_is_strict_with_unbounded_intervals_as_null(tmp_path):
    audit = {"test": "t", "effects": [{"effect": 0.1, "ci_low": float("-inf"), "ci_high": float("inf"),
                                       "p_value": float("nan")}]}
    path = write_json(tmp_path / "r.json", [audit], {"threshold": float("inf")})
    doc = _strict(path.read_text())
    assert doc["audits"][0]["effects"][0] == {"effect": 0.1, "ci_low": None, "ci_high": None, "p_value": None}
    assert doc["settings"]["threshold"] is None


def _cells(line: str) -> list[str]:
    """A GFM table row's cells: split at pipes that are not backslash-escaped (the spec's rule, another way)."""
    return [c for c in re.split(r"(?<!\\)\|", line)[1:-1]]


def test_markdown_shows_html_backticks_and_pipes_as_text_and_keeps_the_table():
    hostile = {"test": "tests/t.py::test_x[a``b|<img src=x onerror=alert(1)>]", "verdict": "error",
               "error": {"class": "AuditConfigError", "message": "bad <script>alert(1)</script> | *bold* `x`"},
               "test_outcome": "failed", "settings": {}}
    text = render_markdown([hostile], {"complete": False, "incomplete_reason": "stopped <b>here</b>"})
    (row,) = [line for line in text.splitlines() if line.startswith("| ```")]
    assert len(_cells(row)) == 9  # the header's nine columns: no pipe of the input split a cell
    outside = re.sub(r"(`{3}).*?\1", "", text)  # a code span shows its content as text already
    assert re.search(r"(?<!\\)<", outside) is None  # every other "<" is escaped: no tag reaches the page
    assert "\\<b\\>here\\</b\\>" in text
    fence = re.match(r"\| (`+)", row).group(1)
    assert len(fence) == 3  # longer than the test id's longest backtick run (2), so the span holds it whole


def test_xml_safe_text_fits_a_junit_property_and_keeps_the_rest():
    name = "LowPass\x01(0.4)\x1b[31m\ttab"
    safe = xml_safe(name)
    assert safe == "LowPass\\x01(0.4)\\x1b[31m\ttab"
    ET.fromstring(f'<property name="{safe}" value="v"/>')  # well-formed: parses
    with pytest.raises(ET.ParseError):
        ET.fromstring(f'<property name="{name}" value="v"/>')  # the raw name does not


def _doc(effects: dict) -> dict:
    return {"schema_version": 1, "environment": {}, "data": {}, "effects": effects}


@pytest.mark.parametrize("row,problem", [
    ({**ROW, "ci_high": -1e308}, "beyond any interval"),
    ({**ROW, "effect": 1e308}, "not a finite effect"),
    ({**ROW, "effect": -7.5}, "not a finite effect"),
])
def test_baseline_numbers_no_run_could_write_are_refused(tmp_path, row, problem):
    folder = tmp_path / ".kernel-audit" / "baselines"
    folder.mkdir(parents=True)
    (folder / "b.json").write_text(json.dumps(_doc({"t | c | p": row})))
    with pytest.warns(BaselineWarning, match=problem):
        assert load_baseline(tmp_path, "b") is None


def test_a_deeply_nested_or_oversized_baseline_is_a_warning(tmp_path):
    folder = tmp_path / ".kernel-audit" / "baselines"
    folder.mkdir(parents=True)
    (folder / "deep.json").write_text("[" * 200_000 + "]" * 200_000)
    with pytest.warns(BaselineWarning, match="not valid JSON"):
        assert load_baseline(tmp_path, "deep") is None
    with open(folder / "huge.json", "wb") as f:
        f.truncate(MAX_BYTES + 1)  # sparse: no disk used
    with pytest.warns(BaselineWarning, match="more than the"):
        assert load_baseline(tmp_path, "huge") is None


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_newest_baseline_skips_links_and_fifos_and_a_named_fifo_is_refused_at_once(tmp_path):
    folder = tmp_path / ".kernel-audit" / "baselines"
    folder.mkdir(parents=True)
    (folder / "good.json").write_text(json.dumps(_doc({"t | c | p": ROW})))
    os.symlink(folder / "gone.json", folder / "zz-dangling.json")  # newer, and dangling
    os.mkfifo(folder / "pipe.json")
    with pytest.warns(BaselineWarning, match="was saved by pytest-kernelbias None"):
        assert load_baseline(tmp_path, None)["path"].endswith("good.json")
    with pytest.warns(BaselineWarning, match="not valid JSON"):  # never waits on the FIFO
        assert load_baseline(tmp_path, "pipe") is None


def test_a_merge_save_keeps_the_tests_it_did_not_run_and_says_what_it_wrote(tmp_path):
    effect = {"contrast": "k5 vs k3", "perturbation": "p", **ROW}
    first = [{"test": "a", "data": "d", "effects": [effect]}, {"test": "b", "data": "d", "effects": [effect]}]
    said = write_baseline(tmp_path, "main", first)[1]
    assert said.startswith("baseline 'main' saved to ") and "2 audit tests, 2 effects" in said
    new = [{"test": "c", "data": "d", "effects": [{**effect, "effect": 0.3, "ci_high": float("inf")}]}]
    said = write_baseline(tmp_path, "main", new, merge=True)[1]
    assert "1 audit tests, 1 effects, 2 more kept from the earlier save" in said
    doc = _strict((tmp_path / ".kernel-audit" / "baselines" / "main.json").read_text())
    assert sorted(doc["effects"]) == ["a | k5 vs k3 | p", "b | k5 vs k3 | p", "c | k5 vs k3 | p"]
    assert doc["effects"]["c | k5 vs k3 | p"]["ci_high"] is None  # unbounded, strict JSON
    write_baseline(tmp_path, "main", new)  # without merge: this run only
    assert list(_strict((tmp_path / ".kernel-audit" / "baselines" / "main.json").read_text())["effects"]) == \
        ["c | k5 vs k3 | p"]


@pytest.mark.slow
def test_the_pull_request_flow_new_audits_are_new_removed_ones_listed_and_a_merge_save_adds_them(pytester, tmp_path):
    """main saves a baseline of one audit; a pull request adds one and drops none: under the strict gate the new
    audit passes and is named new; a merge save adds it; a later run that drops an audit lists it as removed."""
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_audits=CHEAP_AUDIT.replace("raise KeyboardInterrupt", "pass"))
    common = ("--kernel-audit", f"--kernel-audit-cache={tmp_path}", "-p", "no:randomly")
    main = pytester.runpytest_subprocess(*common, "-k", "test_first", "--kernel-audit-save", "main")
    main.assert_outcomes(passed=1)
    main.stdout.fnmatch_lines(["*kernel-audit: baseline 'main' saved to *main.json: 1 audit tests, 1 effects*"])
    gate = ("--kernel-audit-compare", "main", "--kernel-audit-compare-fail", "0")
    pr = pytester.runpytest_subprocess(*common, "-k", "test_first or test_again", *gate)
    pr.assert_outcomes(passed=2)
    text = re.sub(r"\n {4}", "", pr.stdout.str())
    assert re.search(r"^baseline: \S*test_again: new, not in baseline main\.json", text, re.M), text
    merged = pytester.runpytest_subprocess(*common, "-k", "test_again", "--kernel-audit-save", "main",
                                           "--kernel-audit-save-merge")
    merged.stdout.fnmatch_lines(["*1 audit tests, 1 effects, 1 more kept from the earlier save*"])
    later = pytester.runpytest_subprocess(*common, "-k", "test_again", *gate)
    later.assert_outcomes(passed=1)
    text = re.sub(r"\n {4}", "", later.stdout.str())
    assert re.search(r"^baseline: \S*test_again \| kernel_size=5 vs kernel_size=3 .*change \+0\.0000\)$", text, re.M)
    assert re.search(r"^baseline: removed or not run here: \S*test_first ", text, re.M), text


# --- data a team's folder holds -------------------------------------------------------------------------------------

def _pngs(folder, values):
    import numpy as np
    from PIL import Image
    folder.mkdir(parents=True, exist_ok=True)
    for i, v in enumerate(values):
        Image.fromarray(np.full((8, 8), v, dtype=np.uint16)).save(folder / f"{i}.png")


def test_a_16_bit_image_reads_as_value_over_its_maximum(tmp_path):
    from pytest_kernelbias.data import load_csv_manifest
    _pngs(tmp_path / "img", [4000, 60000, 4000, 60000])
    (tmp_path / "m.csv").write_text("file,y,g\n" + "".join(f"img/{i}.png,{i % 2},{'ab'[i // 2]}\n" for i in range(4)))
    data = load_csv_manifest(tmp_path / "m.csv", "file", "y", ["g"], size=8)
    expected = [round(v / 65535 * 255) / 255 for v in (4000, 60000)]  # value / max, in 8 bits
    assert [float(data.images[i].mean()) for i in (0, 1)] == pytest.approx(expected, abs=1e-6)
    assert float(data.images[0].max()) < 0.1  # not white, as convert("RGB") would clip it


def test_a_label_file_in_another_encoding_names_the_file_and_the_fix(tmp_path):
    from pytest_kernelbias.data import load_csv_manifest
    from pytest_kernelbias.errors import DatasetFormatError
    (tmp_path / "m.csv").write_bytes("file,y,g\nimg/0.png,0,café\n".encode("latin-1"))
    with pytest.raises(DatasetFormatError, match=r"m\.csv: not UTF-8 \(byte 0xe9 .*iconv -f latin1 -t utf-8"):
        load_csv_manifest(tmp_path / "m.csv", "file", "y", ["g"], size=8)


def test_an_image_listed_twice_is_refused_with_both_lines(tmp_path):
    from pytest_kernelbias.data import load_csv_manifest
    from pytest_kernelbias.errors import DatasetFormatError
    _pngs(tmp_path / "img", [4000, 60000])
    (tmp_path / "m.csv").write_text("file,y,g\nimg/0.png,0,a\nimg/1.png,1,b\nimg/0.png,1,a\n")
    with pytest.raises(DatasetFormatError, match=r"1 image\(s\) listed more than once: .*0\.png at m\.csv line 2 "
                                                 r"and m\.csv line 4"):
        load_csv_manifest(tmp_path / "m.csv", "file", "y", ["g"], size=8)


def test_every_import_the_docs_show_is_from_the_names_real_home():
    """Each `from pytest_kernelbias... import X` in the README, docs and example audits imports without a
    DeprecationWarning (no moved root alias) and X exists there."""
    import importlib
    import warnings
    from pathlib import Path

    root = Path(__file__).parents[1]
    files = [root / "README.md", *sorted((root / "docs").glob("*.md")), *sorted((root / "example_audits").glob("*.py"))]
    seen = 0
    for path in files:
        for module, names in re.findall(r"from (pytest_kernelbias[\w.]*) import (\([^)]*\)|[^\n#]+)", path.read_text()):
            for name in (n.strip(" ()") for n in names.replace("\n", ",").split(",") if n.strip(" ()")):
                with warnings.catch_warnings():
                    warnings.simplefilter("error", DeprecationWarning)
                    assert hasattr(importlib.import_module(module), name), f"{path.name}: {module}.{name}"
                seen += 1
    assert seen > 10
