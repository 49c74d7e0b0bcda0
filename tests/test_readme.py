"""The README is a contract: its quick start is what CI runs; docs/reference.md, which it links, lists every option."""

import re
import subprocess
from dataclasses import fields
from pathlib import Path

from pytest_kernelbias._options import OPTIONS, AuditSettings, flag, reference_table
from pytest_kernelbias.spec import ExecutionSpec, InferenceSpec, RecipeSpec

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
REFERENCE = (ROOT / "docs" / "reference.md").read_text()  # the options table lives there; the README links it


def quickstart_commands() -> list[str]:
    block = README.split("<!-- quickstart:begin -->")[1].split("<!-- quickstart:end -->")[0]
    return [line for line in block.splitlines() if line.strip() and not line.startswith(("```", "#"))]


def test_quickstart_is_two_commands_install_and_audit_then_tests():
    install_and_audit, tests = quickstart_commands()
    assert "pip install -c constraints-ci.txt" in install_and_audit
    assert install_and_audit.endswith("pytest --kernel-audit example_audits")
    assert tests == ".venv/bin/pytest -n auto"  # one xdist worker per core


def test_ci_runs_exactly_the_readme_commands():
    script = (ROOT / ".ci" / "run").read_text()
    extract = re.search(r"mapfile -t commands < <\((.*?)\)\n", script, re.S).group(1)
    out = subprocess.run(["bash", "-c", extract], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == quickstart_commands()


def test_ci_constraints_pin_the_local_torch_build():
    pins = (ROOT / "constraints-ci.txt").read_text()
    assert "torch==2.14.1" in pins and "torchvision==0.29.1" in pins


def test_the_options_table_is_the_one_the_declarations_make():
    block = REFERENCE.split("<!-- options:begin (generated: python -m pytest_kernelbias._options) -->\n")[1]
    assert block.split("<!-- options:end -->")[0] == reference_table(), (
        "docs/reference.md's options table is stale: replace it with `python -m pytest_kernelbias._options`")
    for name in OPTIONS:
        assert f"`--kernel-audit-{flag(name)}" in REFERENCE and f"`kernel_audit_{name}`" in REFERENCE


def test_the_settings_are_the_declared_options_with_their_defaults():
    assert [f.name for f in fields(AuditSettings)] == list(OPTIONS)
    assert AuditSettings() == AuditSettings(**{name: o.default for name, o in OPTIONS.items()})
    # The spec dataclasses, which run_audit uses, start from the same defaults.
    assert (RecipeSpec().seeds, InferenceSpec().threshold, InferenceSpec().rule, ExecutionSpec().executor) == \
        tuple(OPTIONS[n].default for n in ("seeds", "threshold", "rule", "executor"))
