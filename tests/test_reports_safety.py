"""Reports, baselines and messages stay truthful when a run is interrupted, misused or fed bad files (issue 13)."""

import json
import subprocess
import sys
import textwrap

import pytest
from torch import nn

from pytest_kernelbias.errors import AuditConfigError, BaselineWarning, ReportWarning
from pytest_kernelbias.intervention import describe_intervention
from pytest_kernelbias.reporting._baseline import check_name, compare, load_baseline
from pytest_kernelbias.reporting._session import SessionProgress, write_outputs

# One-epoch audits on 200 images: seconds, and every run after the first loads its variants from `variants`.
CHEAP_AUDIT = '''
import pytest
from torch import nn
from pytest_kernelbias import LowPass, TrainConfig, synthfaces

def cnn():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 2))

def audit(kernel_audit):
    return kernel_audit(cnn, layer="0", levels=[3, 5], data=synthfaces(200, 0, "planted"),
                        test_data=synthfaces(100, 0, "planted", split="test"), perturbation=LowPass(0.4),
                        train_config=TrainConfig(epochs=1, batch_size=32), device="cpu", require_learning=False)

@pytest.mark.kernel_audit(seeds=2)
def test_first(kernel_audit):
    audit(kernel_audit)

@pytest.mark.kernel_audit(seeds=2)
def test_ctrl_c(kernel_audit):
    audit(kernel_audit)
    raise KeyboardInterrupt  # Ctrl-C once the audit has run

@pytest.mark.kernel_audit(seeds=2)
def test_again(kernel_audit):
    audit(kernel_audit)
'''


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    # Passed as --kernel-audit-cache=DIR, one argument: a separate path argument would move pytest's rootdir.
    return str(tmp_path_factory.mktemp("variants"))


@pytest.fixture
def audits(pytester):
    """The cheap audits as test_audits.py, with an ini so the rootdir (where baselines live) is pytester's folder."""
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_audits=CHEAP_AUDIT)
    return pytester


def _effects(pytester, name: str) -> dict:
    return json.loads((pytester.path / ".kernel-audit" / "baselines" / f"{name}.json").read_text())["effects"]


# --- baselines and reports of runs that are not whole ---------------------------------------------------------------

@pytest.mark.slow
def test_an_interrupted_run_keeps_the_baseline_and_writes_its_report_beside_marked_incomplete(audits, variants):
    pytester = audits
    common = ("--kernel-audit", f"--kernel-audit-cache={variants}", "--kernel-audit-save", "b1",
              "--kernel-audit-json", "r.json", "--kernel-audit-html", "r.html")
    whole = pytester.runpytest_subprocess(*common, "-k", "not ctrl_c")
    whole.assert_outcomes(passed=2)
    assert len(_effects(pytester, "b1")) == 2
    report = json.loads((pytester.path / "r.json").read_text())
    assert report["complete"] is True and report["incomplete_reason"] is None and len(report["audits"]) == 2
    kept = {name: (pytester.path / name).read_bytes() for name in ("r.json", "r.html")}

    cut = pytester.runpytest_subprocess(*common)  # test_first passes, then Ctrl-C in test_ctrl_c
    assert cut.ret == pytest.ExitCode.INTERRUPTED
    cut.stdout.fnmatch_lines(["kernel-audit: the JSON report is marked incomplete and written to r.incomplete.json; "
                              "r.json is left as it was*",
                              "kernel-audit: baseline 'b1' not saved*because the session was interrupted*"
                              "test_audits.py::test_ctrl_c*"])
    cut.stdout.fnmatch_lines(["*ReportWarning: baseline 'b1' not saved*"])
    assert len(_effects(pytester, "b1")) == 2  # not replaced by the one audit that finished
    assert {name: (pytester.path / name).read_bytes() for name in kept} == kept
    partial = json.loads((pytester.path / "r.incomplete.json").read_text())
    assert partial["complete"] is False and "interrupted" in partial["incomplete_reason"]
    assert [a["test"] for a in partial["audits"]] == ["test_audits.py::test_first"]
    page = (pytester.path / "r.incomplete.html").read_text()
    assert "INCOMPLETE REPORT: the session was interrupted" in page


def test_a_run_is_whole_only_when_every_started_test_finished_and_nothing_stopped_it_early():
    progress = SessionProgress()
    for nodeid in ("t.py::a", "t.py::b"):
        progress.start(nodeid)
        progress.finish(nodeid)
    assert progress.incomplete_reason(interrupted=False) == ""
    # -x after the last test: nothing was left out.
    assert progress.incomplete_reason(False, "stopping after 1 failures", collected=2) == ""
    assert "stopped early (stopping after 1 failures)" in progress.incomplete_reason(False, "stopping after 1 "
                                                                                     "failures", collected=3)
    progress.start("t.py::c")  # a worker crashed mid-test: started, never torn down
    assert progress.incomplete_reason(False) == "1 test(s) did not finish: t.py::c"
    progress.interrupt("")
    assert progress.incomplete_reason(False).startswith("the session was interrupted (KeyboardInterrupt); ")


def test_a_run_that_audited_nothing_leaves_the_baseline_and_report_alone(audits):
    pytester = audits
    folder = pytester.path / ".kernel-audit" / "baselines"
    folder.mkdir(parents=True)
    (folder / "b1.json").write_text("saved by an earlier run")
    (pytester.path / "r.json").write_text("written by an earlier run")
    result = pytester.runpytest("--kernel-audit-save", "b1", "--kernel-audit-json", "r.json")  # audits skipped
    result.assert_outcomes(skipped=3)
    result.stdout.fnmatch_lines(["kernel-audit: not written: the JSON report r.json, baseline 'b1': no audit result "
                                 "was recorded (were the audits skipped? they run only with --kernel-audit)*"])
    result.stdout.fnmatch_lines(["*ReportWarning: not written*"])
    assert (folder / "b1.json").read_text() == "saved by an earlier run"
    assert (pytester.path / "r.json").read_text() == "written by an earlier run"


def test_with_report_warnings_as_errors_the_run_fails_without_a_traceback(audits):
    pytester = audits
    result = pytester.runpytest("--kernel-audit-save", "b1", "-W", "error::pytest_kernelbias.errors.ReportWarning")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["kernel-audit: not written: baseline 'b1': no audit result was recorded*"])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


def test_a_report_or_baseline_that_cannot_be_written_is_a_warning_not_a_traceback(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("a file where a folder should be")
    record = {"test": "t.py::test", "data": "d", "effects": [{"contrast": "c", "perturbation": "p", "effect": 0.1,
                                                               "ci_low": 0.0, "ci_high": 0.2, "p_value": 0.5, "n": 2}]}
    with pytest.warns(ReportWarning) as caught:
        notes = write_outputs([record], {"json": str(blocker / "r.json")}, "", "b1", blocker)
    assert [str(w.message) for w in caught] == list(notes)
    assert notes[0].startswith("the JSON report was not written: cannot create the folder")
    assert notes[1].startswith("baseline 'b1' not saved: ")


# --- baseline names -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("option,name,problem", [
    ("--kernel-audit-save", "../../x", "path separator"),
    ("--kernel-audit-save", "..", "'..'"),
    ("--kernel-audit-save", "", "empty"),
    ("--kernel-audit-save", "runs/b1", "path separator"),
    ("--kernel-audit-save", "a\\b", "path separator"),
    ("--kernel-audit-compare", "../elsewhere", "path separator"),
])
def test_a_baseline_name_that_is_a_path_is_a_usage_error_naming_the_fix(pytester, option, name, problem):
    pytester.makepyfile(test_audits=CHEAP_AUDIT)
    result = pytester.runpytest(option, name)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{option} {name!r} is not a baseline name: *{problem}*plain name such as main*"])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_plain_baseline_names_are_accepted():
    assert check_name("before-refactor_2.1") == "before-refactor_2.1"
    with pytest.raises(AuditConfigError, match="starts with '.'"):
        check_name(".hidden")


# --- malformed baselines --------------------------------------------------------------------------------------------

GOOD_ROW = {"effect": 0.1, "ci_low": 0.0, "ci_high": 0.2, "p_value": 0.5, "n": 2}


@pytest.mark.parametrize("doc,problem", [
    ([], "the document is an array, not an object"),
    ("text", "the document is a string"),
    ({"schema_version": 1}, '"effects" is missing'),
    ({"schema_version": 1, "effects": []}, '"effects" is an array'),
    ({"schema_version": 1, "effects": {"t | c | p": [1, 2]}}, "effect 't | c | p' is an array"),
    ({"schema_version": 1, "effects": {"t | c | p": {**GOOD_ROW, "effect": "0.1"}}}, "'effect' is a string"),
    ({"schema_version": 1, "effects": {"t | c | p": {**GOOD_ROW, "effect": None}}}, "'effect' is null"),
    ({"schema_version": 1, "effects": {"t | c | p": {**GOOD_ROW, "ci_low": "-inf"}}}, "'ci_low' is a string"),
    ({"schema_version": 1, "effects": {"t | c | p": {**GOOD_ROW, "ci_high": True}}}, "'ci_high' is a boolean"),
    ({"schema_version": 1, "effects": {"t | c | p": {**GOOD_ROW, "effect": float("nan")}}}, "not a finite effect"),
    ({"schema_version": 1, "effects": {}, "data": ["x"]}, "'data' is an array"),
    ({"schema_version": 1, "effects": {}, "environment": "ci"}, "'environment' is a string"),
    ({"schema_version": "1", "effects": {}}, "schema version '1'"),
])
def test_a_malformed_baseline_is_a_warning_and_no_comparison(tmp_path, doc, problem):
    folder = tmp_path / ".kernel-audit" / "baselines"
    folder.mkdir(parents=True)
    (folder / "bad.json").write_text(json.dumps(doc))
    with pytest.warns(BaselineWarning, match="comparison skipped") as caught:
        assert load_baseline(tmp_path, "bad") is None
    assert problem in str(caught[0].message)


def test_a_well_formed_baseline_with_an_infinite_interval_still_compares(tmp_path):
    folder = tmp_path / ".kernel-audit" / "baselines"
    folder.mkdir(parents=True)
    row = {**GOOD_ROW, "ci_low": float("-inf"), "ci_high": float("inf")}  # too few seeds for a finite interval
    (folder / "ok.json").write_text(json.dumps({"schema_version": 1, "effects": {"t | c | p": row},
                                                "environment": {}, "data": {}}))
    with pytest.warns(BaselineWarning, match="was saved by pytest-kernelbias None"):
        baseline = load_baseline(tmp_path, "ok")
    audit = {"test": "t", "data": "d", "effects": [{"contrast": "c", "perturbation": "p", "effect": 0.3,
                                                    "ci_low": 0.2, "ci_high": 0.4}]}
    (row,) = compare(audit, baseline)
    assert row["growth"] == pytest.approx(0.2) and row["growth_lower"] == float("-inf")


@pytest.mark.slow
def test_an_audit_compared_with_a_malformed_baseline_passes_with_a_warning(audits, variants):
    pytester = audits
    folder = pytester.path / ".kernel-audit" / "baselines"
    folder.mkdir(parents=True)
    key = "test_audits.py::test_first | kernel_size=5 vs kernel_size=3 | LowPass(0.4)"
    (folder / "b1.json").write_text(json.dumps({"schema_version": 1, "environment": [],
                                                "effects": {key: {**GOOD_ROW, "effect": "big"}}}))
    result = pytester.runpytest_subprocess("--kernel-audit", f"--kernel-audit-cache={variants}", "-k", "test_first",
                                           "--kernel-audit-compare", "b1", "--kernel-audit-compare-fail", "0")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*BaselineWarning: baseline *b1.json is malformed (*'effect' is a string*"
                                 "comparison skipped*"])


# --- messages -------------------------------------------------------------------------------------------------------

def test_the_seeds_hint_names_the_marker_keyword_and_the_option(pytester):
    pytester.makepyfile("""
        import pytest

        @pytest.mark.kernel_audit(seeds=1)
        def test_settings(kernel_audit_settings):
            pass
    """)
    result = pytester.runpytest("--kernel-audit")
    result.stdout.fnmatch_lines(["*@pytest.mark.kernel_audit on *test_settings: *at least 2 seeds*"
                                 "seeds=N on @pytest.mark.kernel_audit or run_audit, or --kernel-audit-seeds=N*"])


def test_the_level_equal_to_the_original_is_not_called_a_placebo():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1))
    notes = {r["level"]: "; ".join(r["notes"]) for r in describe_intervention(model, "0", [3, 5])}
    assert "unchanged level: hyperparameters equal the original's" in notes["kernel_size=3"]
    assert "placebo" not in " ".join(notes.values())


@pytest.mark.slow
def test_workers_in_a_script_without_a_main_guard_explain_the_guard(tmp_path):
    script = tmp_path / "audit_script.py"
    script.write_text(textwrap.dedent("""
        from torch import nn
        from pytest_kernelbias import LowPass, TrainConfig, run_audit, synthfaces

        def cnn():
            return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                 nn.Linear(4, 2))

        # No `if __name__ == "__main__":` guard: every spawned worker runs this line again.
        run_audit(cnn, "0", [3, 5], data=synthfaces(200, 0, "planted"), seeds=2, workers=2, executor="pool",
                  test_data=synthfaces(100, 0, "planted", split="test"), perturbation=LowPass(0.4),
                  train_config=TrainConfig(epochs=1, batch_size=32), require_learning=False, progress=None)
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("pytest_kernelbias.errors.WorkerDiedError: no training worker could start")
    assert 'if __name__ == "__main__":' in last and "bootstrapping phase" in last
    assert "out of memory" not in last


@pytest.mark.slow
def test_an_error_inside_the_audit_shows_the_test_line_and_message_not_the_package_frames(pytester):
    pytester.makepyfile(test_audits=CHEAP_AUDIT.replace('layer="0"', 'layer="nope"'))
    for style in ("auto", "short", "long"):
        result = pytester.runpytest("--kernel-audit", "-k", "test_first", f"--tb={style}")
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(["*UnknownLayerError: layer 'nope' is not a layer of this model*"])
        out = result.stdout.str()
        assert "test_audits.py:" in out and "pytest_kernelbias" + "/" not in out.replace("pytest_kernelbias.errors", "")
        assert "tensor(" not in out and "SubgroupDataset(" not in out
    full = pytester.runpytest("--kernel-audit", "-k", "test_first", "--full-trace")
    assert "_select.py" in full.stdout.str()  # --full-trace still shows every frame
