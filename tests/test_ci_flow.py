"""A team's merge-gate flow under pytest-xdist, as docs/ci.md tells it: main saves a baseline, a pull request
that adds an audit passes the strict gate with the audit named new, Ctrl-C in the middle of a run ends the
workers within seconds with the unfinished audits named, and the cache it leaves serves the next run."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import pytest

from .test_interrupt import answer_ctrl_c
from .test_reports_safety import CHEAP_AUDIT

LONG_AUDIT = CHEAP_AUDIT.replace("epochs=1", "epochs=400").replace("def test_", "def test_long_")


def _run(pytester, *args) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-n", "2", "-p", "no:randomly", *args)


def _interrupt(pytester, args: list[str], out) -> tuple[int, float]:
    """Start pytest, send it SIGINT (Ctrl-C) once a worker's audit has begun training; its exit code and seconds
    from the signal to its exit."""
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-n", "2", "-p", "no:randomly", *args],
                            cwd=pytester.path, stdout=out, stderr=subprocess.STDOUT, preexec_fn=answer_ctrl_c)
    deadline = time.monotonic() + 300
    while "setup: 4 models" not in (pytester.path / "ctrl-c.txt").read_text() and time.monotonic() < deadline:
        time.sleep(0.5)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=120)
    return code, time.monotonic() - sent


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT")
def test_baseline_pull_request_and_ctrl_c_under_xdist_behave_as_docs_ci_says(pytester, tmp_path):
    pytest.importorskip("xdist")
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_audits=CHEAP_AUDIT.replace("raise KeyboardInterrupt", "pass"), test_slow=LONG_AUDIT)
    cache = f"--kernel-audit-cache={tmp_path / 'cache'}"
    main = _run(pytester, "--kernel-audit", cache, "-k", "test_first", "--kernel-audit-save", "main")
    main.assert_outcomes(passed=1)
    main.stdout.fnmatch_lines(["*baseline 'main' saved to *main.json: 1 audit tests, 1 effects*"])
    gate = ("--kernel-audit", cache, "--kernel-audit-compare", "main", "--kernel-audit-compare-fail", "0",
            "--kernel-audit-strict", "--kernel-audit-md", "summary.md", "--junitxml", "junit.xml")
    pr = _run(pytester, *gate, "-k", "test_first or test_again")
    pr.assert_outcomes(passed=2)
    text = re.sub(r"\n {4}", "", pr.stdout.str())
    assert re.search(r"^baseline: \S*test_again: new, not in baseline main\.json", text, re.M), text
    assert "test_again" in (pytester.path / "summary.md").read_text()
    assert 'name="kernel_audit_verdict"' in (pytester.path / "junit.xml").read_text()

    with open(pytester.path / "ctrl-c.txt", "w") as out:
        code, seconds = _interrupt(pytester, [*gate, "-k", "test_long_first or test_long_again"], out)
    log = (pytester.path / "ctrl-c.txt").read_text()
    assert code == pytest.ExitCode.INTERRUPTED, log
    assert seconds < 30, log  # the workers' trainings are cut, not finished (each would take minutes)
    assert re.search(r"interrupted \(KeyboardInterrupt\); 2 test\(s\) did not finish: \S*test_long_", log), log

    # The cache the interrupted run left is whole: the pull request's audits load from it, nothing retrains.
    again = _run(pytester, *gate, "-k", "test_first or test_again")
    again.assert_outcomes(passed=2)
    again.stdout.fnmatch_lines(["2 audit tests; models: 0 trained, 8 loaded from the cache, *"])
