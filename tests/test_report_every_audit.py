"""Every audit test is in every report, told as it ran (issue 24): an audit that raised is a row with its error
and what it trained, a marked test whose audit never ran is a row with why, the counts add up to the cache's own
files, and the summary is the same serial and under pytest-xdist."""

from __future__ import annotations

import json

import pytest

SUITE = '''
import pytest
from torch import nn
from pytest_kernelbias import LowPass, TrainConfig, synthfaces
from pytest_kernelbias.training import train

TRAIN, TEST = synthfaces(240, 0, "planted"), synthfaces(160, 0, "planted", split="test")
RECIPE = TrainConfig(epochs=1, batch_size=32)

def cnn():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 2))

def breaks_at_second_seed(model, data, seed):
    if seed == 1:
        raise RuntimeError("the training node went away")
    return train(model, data, seed, RECIPE)

def run(kernel_audit, **kw):
    return kernel_audit(cnn, layer="0", levels=[3, 5], data=TRAIN, test_data=TEST, perturbation=LowPass(0.4),
                        train_config=RECIPE, device="cpu", workers=1, require_learning=False,
                        spectral_cutoff=None, placebos=(), **kw)

@pytest.mark.kernel_audit(seeds=2, threshold=1.0, rule="estimate")
def test_a_passing_audit(kernel_audit):
    run(kernel_audit).assert_below()

@pytest.mark.kernel_audit(seeds=2, threshold=1.0, rule="estimate")
def test_an_audit_that_raises(kernel_audit):
    run(kernel_audit, trainer=breaks_at_second_seed).assert_below()

def deeper():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(16, 2))

@pytest.mark.kernel_audit(seeds="auto", max_seeds=4, threshold=0.01)
def test_an_undecided_audit(kernel_audit):
    kernel_audit(deeper, layer="0", levels=[3, 5], data=synthfaces(400, 0, "planted"),
                 test_data=synthfaces(300, 0, "planted", split="test"),
                 train_config=TrainConfig(epochs=3, batch_size=32), device="cpu", workers=1,
                 require_learning=False, spectral_cutoff=None, placebos=()).assert_below()

@pytest.mark.kernel_audit(seeds=2)
def test_an_audit_skipped_before_it_ran(kernel_audit):
    pytest.skip("needs a GPU")

@pytest.mark.kernel_audit(seeds=2)
def test_a_test_that_fails_before_its_audit(kernel_audit):
    raise ValueError("the fixture data is missing")
'''


def _run(pytester, tmp_path, name, *extra):
    pytester.makepyfile(test_suite=SUITE)
    out = tmp_path / name
    result = pytester.runpytest_subprocess(
        "--kernel-audit", "-p", "no:cacheprovider", "--kernel-audit-cache", str(out / "cache"),
        "--kernel-audit-json", str(out / "report.json"), "--kernel-audit-html", str(out / "report.html"),
        "--kernel-audit-md", str(out / "summary.md"), *extra)
    return result, out


def _summary(result) -> list[str]:
    text = result.stdout.str().split("kernel audit summary")[1].split("\n=")[0]
    return text.splitlines()[1:]


@pytest.mark.slow
def test_an_errored_audit_is_in_every_report_with_counts_that_match_the_cache(pytester, tmp_path):
    result, out = _run(pytester, tmp_path, "serial", f"--junitxml={tmp_path / 'junit.xml'}")
    result.assert_outcomes(passed=2, failed=2, skipped=1, warnings=None)
    # JUnit: the audit that raised reads apart from one that decided (a property, as every effect's numbers).
    import xml.etree.ElementTree as ET
    verdicts = {case.get("name"): prop.get("value") for case in ET.parse(tmp_path / "junit.xml").iter("testcase")
                for prop in case.iter("property") if prop.get("name") == "kernel_audit_verdict"}
    assert verdicts["test_an_audit_that_raises"] == "error: RuntimeError: the training node went away"
    assert verdicts["test_a_passing_audit"] == "pass"
    summary = " ".join(" ".join(_summary(result)).split())  # wrapped lines joined: the words are what counts
    assert "test_suite.py::test_an_audit_that_raises error, no verdict: RuntimeError: the training node went " \
           "away (2 models trained and 0 in the cache before it stopped; seeds 2, threshold 1, rule estimate)" \
           in summary
    assert "test_suite.py::test_an_audit_skipped_before_it_ran skipped, audit not run: needs a GPU" in summary
    assert "test_suite.py::test_a_test_that_fails_before_its_audit failed, audit not run: ValueError: the " \
           "fixture data is missing" in summary
    assert "(seeds=auto 3-4: undecided, futility)" in summary and "undecided: the " in summary
    # Counts: the passing audit trained 4 models, the undecided one 6 (3 seeds), the errored one 2 before it
    # stopped: the cache holds 12.
    weights = list((out / "cache").glob("*/*/weights.safetensors"))
    assert len(weights) == 12
    assert "5 audit tests; models: 12 trained, 0 loaded from the cache, 10 evaluated (errored audits included: 1)" \
        in summary

    report = json.loads((out / "report.json").read_text())
    assert report["complete"] is True
    by_test = {a["test"].split("::")[1]: a for a in report["audits"]}
    assert set(by_test) == {"test_a_passing_audit", "test_an_audit_that_raises", "test_an_audit_skipped_before_it_ran",
                            "test_a_test_that_fails_before_its_audit", "test_an_undecided_audit"}
    errored = by_test["test_an_audit_that_raises"]
    assert errored["verdict"] == "error" and errored["test_outcome"] == "failed"
    assert errored["error"] == {"class": "RuntimeError", "message": "the training node went away"}
    assert errored["settings"]["trained"] == 2 and errored["settings"]["seeds"] == 2
    assert sum(a["settings"].get("trained", 0) for a in report["audits"]) == len(weights)

    html = (out / "report.html").read_text()
    assert "5 audits" in html and "RuntimeError" in html and "the training node went away" in html
    assert "verdict: error" in html and "needs a GPU" in html
    markdown = (out / "summary.md").read_text()
    rows = [line for line in markdown.splitlines() if line.startswith("| `test_suite.py")]
    assert len(rows) == 5
    assert any("⛔ **error**" in row and "RuntimeError: the training node went away" in row for row in rows)


@pytest.mark.slow
def test_the_summary_under_xdist_equals_the_serial_one(pytester, tmp_path):
    pytest.importorskip("xdist")
    serial, _ = _run(pytester, tmp_path, "serial")
    parallel, _ = _run(pytester, tmp_path, "xdist", "-n", "2")
    parallel.assert_outcomes(passed=2, failed=2, skipped=1, warnings=None)

    def comparable(result):
        # The cache folder (the summary's last words) differs between the two runs by design; every other
        # character must match.
        return "\n".join(_summary(result)).split("; cache ")[0]
    assert "test_an_audit_that_raises" in comparable(serial)
    assert comparable(parallel) == comparable(serial)
