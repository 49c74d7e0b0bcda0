"""A project with the plugin installed pays nothing for the audit when no audit runs: pytest loads the plugin,
which imports neither torch, scipy nor numpy until an audit fixture is used (benchmarks/plugin_cost.py
measures the time and memory that saves)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "scipy", "numpy", "timm", "ray")

CONFTEST = f"""
import json, sys

def pytest_unconfigure(config):
    with open("loaded.json", "w") as fh:
        json.dump([m for m in {HEAVY!r} if m in sys.modules], fh)
"""

TESTS = """
import pytest

def test_plain():
    assert 1 + 1 == 2

@pytest.mark.kernel_audit(seeds=3)
def test_an_audit_left_off():
    raise AssertionError("runs only with --kernel-audit")
"""


def _loaded(pytester, *args) -> list[str]:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
    result.assert_outcomes(passed=1, skipped=1)
    return json.loads((pytester.path / "loaded.json").read_text())


@pytest.mark.parametrize("args", [(), ("--kernel-audit-json", "audit.json", "--kernel-audit-md", "audit.md"),
                                  ("--kernel-audit-seeds", "4", "-v")])
def test_a_run_without_audits_imports_no_torch_scipy_or_numpy(pytester, args):
    assert _loaded(pytester, *args) == []


def test_the_plugin_is_really_loaded_in_that_run(pytester):
    # The check above would pass trivially if the plugin were not loaded: its header line shows it was.
    pytester.makepyfile(TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["kernel-audit defaults*audits off (use --kernel-audit)"])


def test_the_package_root_and_its_settings_import_without_torch():
    code = ("import sys, pytest_kernelbias, pytest_kernelbias.plugin, pytest_kernelbias.errors; "
            f"print([m for m in {HEAVY!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_root_names_still_load_on_first_use():
    code = ("import sys, pytest_kernelbias as kb; before = 'torch' in sys.modules; kb.run_audit; kb.LowPass; "
            "print(before, 'torch' in sys.modules, kb.AuditSpec.__module__, 'run_audit' in dir(kb))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True", "pytest_kernelbias.spec", "True"]
