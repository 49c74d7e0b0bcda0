"""The HTML report is self-contained, opens with a verdict card per audit, and shows every result an audit
computed in tables and consistent plots (issue 15; the browser layout check is test_report_browser.py)."""

import html
import json
import re

import matplotlib
import pytest

from pytest_kernelbias import LowPass, TrainConfig, run_audit, synthfaces
from pytest_kernelbias.reporting._html import render_html, write_html
from pytest_kernelbias.reporting._json import environment

from .conftest import tiny_cnn

FIGURES = ["Metric against perturbation, per level", "Drops by subgroup and level", "Kernel spectra per level",
           "Fourier heat maps per subgroup"]


@pytest.fixture(scope="module")
def result():
    # Three levels (a dose-response slope), two attributes (intersectional subgroups), both placebos, a
    # severity sweep and heat maps: every result an audit can compute. One epoch: near chance, but every
    # table and plot still has data.
    return run_audit(tiny_cnn, "0", [3, 5, 7], data=synthfaces(300, 0, "planted"),
                     test_data=synthfaces(240, 0, "planted", split="test"), attributes=["skin_tone", "gender"],
                     seeds=2, perturbation=LowPass.sweep([0.6, 0.4]), train_config=TrainConfig(epochs=1, batch_size=32),
                     placebos=("shuffle", "aa"), heat_map=dict(eps=4.0, step=8, images=16), min_group_size=5,
                     progress=None, require_learning=False, workers=1)


@pytest.fixture(scope="module")
def record(result):
    return {**result.to_dict(), "test": "demo.py::test_audit", "test_outcome": "passed"}


def _text(page: str) -> str:
    """What a reader sees: the page without its tags, runs of white space as one space."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def _images(page: str) -> int:
    return page.count("src='data:image/png;base64,")


def test_report_is_self_contained_with_cards_a_summary_table_and_every_plot(record):
    page = render_html([record], environment(), {"seeds": 2})
    assert "kernel audit report" in page.lower() and "demo.py::test_audit" in page
    # Nothing fetched from elsewhere: no linked files, scripts, styles, fonts or images.
    assert not re.search(r"""(src|href)=['"](https?:|//)|<link|<script[^>]*src|@import|url\(""", page)
    assert "<pre" not in page  # the summary is a table, not preformatted text
    assert "<table class='summary'>" in page and "<div class='cards'>" in page
    for title in FIGURES + ["Example perturbed images", "All effects against the threshold", "Placebo checks"]:
        assert title in page
    conditions = len(record["examples"])
    assert _images(page) == len(FIGURES) + conditions  # one strip of example images per condition


@pytest.mark.slow
def test_dollar_signs_in_names_are_text_not_mathtext_in_every_label(record):
    # "$x^{$" is a mathtext syntax error: it would reach matplotlib through tick labels (subgroups,
    # perturbations), panel titles (subgroups) and the heat maps' titles and level labels.
    bad = "$x^{$"
    text = json.dumps(record).replace("skin_tone", f"skin{bad}tone").replace("LowPass", f"Low{bad}Pass")
    record = {**json.loads(text), "test": f"demo{bad}.py::test_audit"}
    page = render_html([record], environment(), {"seeds": 2})
    expected = len(FIGURES) + len(record["examples"])
    assert "skin$x^{$tone=dark" in page and "demo$x^{$.py::test_audit" in page
    assert _images(page) == expected
    with matplotlib.rc_context({"text.usetex": True}):  # nor is a user's rc asking for LaTeX obeyed
        assert _images(render_html([record], environment(), {"seeds": 2})) == expected


@pytest.mark.slow
def test_every_result_the_audit_computed_is_in_the_report(record):
    text = _text(render_html([record], environment(), {"seeds": 6}))
    for e in record["effects"]:
        assert f"{e['effect']:+.4f}" in text and f"{e['mde']:.3f}" in text and f"{e['gap']:+.3f}" in text
    assert record["dose_response"] and record["spectral_effects"]  # the fixture computes every kind
    for r in record["dose_response"] + record["placebos"] + record["pairwise"]:
        assert f"{r['effect']:+.4f}" in text and f"{r['ci_low']:+.3f}" in text
    for r in record["subgroup_effects"] + record["spectral_effects"]:
        assert f"{r['effect']:+.3f}" in text and f"[{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]" in text
    assert {p["placebo"] for p in record["placebos"]} == {"subgroup-shuffle", "A/A"}
    assert all(p in text for p in ("subgroup-shuffle", "A/A", "Dose-response", "Spectral effects per subgroup"))
    for level, accuracy in record["clean_accuracy"].items():  # the 'models learned' check, per level
        assert f"{accuracy:.3f}" in text and (level == "majority" or level in text)
    settings = record["settings"]
    assert f"{settings['seeds']} per level" in text
    assert all(level in text for level in settings["levels"])
    shown = {k: f"{v:.4g}" if isinstance(v, float) else v for k, v in settings["train"].items()}  # 4 significant
    assert all(f"{key} {value}" in text for key, value in shown.items())  # the training recipe
    assert all(f"{group}: {n}" in text for group, n in record["group_counts"].items())  # subgroup sizes
    assert record["data"] in text


@pytest.mark.slow
def test_the_first_screen_has_a_card_with_outcome_verdict_effect_gap_and_seeds(result):
    # Just above the largest estimate: every effect passes, and those whose CI reaches past it warn.
    threshold = max(abs(e.estimate) for e in result.all_effects.values()) + 1e-4
    warned = {**result.to_dict(result.judge(threshold=threshold, rule="estimate")), "test": "t.py::test_warned",
              "test_outcome": "passed"}
    failed = {**result.to_dict(result.judge(threshold=0.0, rule="estimate")), "test": "t.py::test_failed",
              "test_outcome": "failed"}
    page = render_html([warned, failed], environment(), {})
    cards = page.split("<div class='cards'>")[1].split("All effects against the threshold")[0]
    assert cards.count("<article class='card ov") == 2
    for record, outcome in ((warned, "passed"), (failed, "failed")):
        card = cards.split(record["test"])[1].split("</article>")[0]
        assert f"pytest: {outcome}" in card and f"verdict: {record['verdict']}" in card
        assert "<svg class='forest'" in card  # the effect against its threshold, as an inline forest row
        first = record["effects"][0]
        assert f"{first['gap']:+.3f}" in card and "Seeds 2 per level × 3 levels" in _text(card)
    assert failed["verdict"] == "fail" and "breaks the threshold 0 by rule estimate" in _text(cards)
    assert warned["verdict"] == "warn" and "Passed, but" in _text(cards)  # and why: what it could not rule out


@pytest.mark.slow
def test_an_incomplete_run_has_a_banner_and_says_so_in_the_title(record):
    page = render_html([record], environment(), {}, {"complete": False,
                                                     "incomplete_reason": "the session was interrupted (Ctrl-C)"})
    assert "<title>kernel audit report (INCOMPLETE)</title>" in page
    assert "INCOMPLETE REPORT: the session was interrupted (Ctrl-C)." in page
    assert "INCOMPLETE" not in render_html([record], environment(), {})


@pytest.mark.slow
def test_report_folder_is_created_and_the_report_stays_small(tmp_path, record):
    target = write_html(tmp_path / "deep" / "er" / "report.html", [record], environment(), {})
    assert target.exists() and 10_000 < target.stat().st_size < 300_000


@pytest.mark.slow
def test_an_infinite_interval_is_drawn_to_the_edge_and_written_as_inf(record):
    # Too few seeds for a finite interval: the report still renders, says so, and points off the axis.
    first = {**record["effects"][0], "ci_low": float("-inf"), "ci_high": float("inf")}
    page = render_html([{**record, "effects": [first, *record["effects"][1:]]}], environment(), {})
    assert "[-inf, +inf]" in page and "<path d='M4 " in page


@pytest.mark.slow
def test_a_sequential_audit_shows_every_look_and_why_it_stopped():
    result = run_audit(tiny_cnn, "0", [3, 5], data=synthfaces(300, 0, "planted"),
                       test_data=synthfaces(200, 0, "planted", split="test"), seeds="auto", min_seeds=2, max_seeds=3,
                       seed_round=1, perturbation=LowPass(0.4), train_config=TrainConfig(epochs=1, batch_size=32),
                       progress=None, require_learning=False, workers=1)
    record = {**result.to_dict(), "test": "t.py::test_auto", "test_outcome": "passed"}
    text = _text(render_html([record], environment(), {}))
    seq = record["sequential"]
    assert f"Sequential seeds (seeds=auto): {seq['decision']}" in text and seq["reason"] in text
    count = len(seq["looks"])
    assert f"(seeds=auto: {seq['decision']} after {count} look{'s' if count != 1 else ''})" in text  # on the card
    for look in seq["looks"]:
        assert f"{look['confidence']:.2%}" in text
        assert all(f"[{lo:+.3f}, {hi:+.3f}]" in text for lo, hi in look["intervals"].values())
