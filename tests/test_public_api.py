"""The public API: the names the README teaches at the root, every error and warning in one module under one
base each, and the names that moved still served for a release with a warning naming their home."""

from __future__ import annotations

import importlib
import inspect

import pytest

import pytest_kernelbias
from pytest_kernelbias import errors


def test_the_root_exports_at_most_forty_names_and_each_exists():
    assert len(pytest_kernelbias.__all__) <= 40
    assert len(set(pytest_kernelbias.__all__)) == len(pytest_kernelbias.__all__)
    for name in pytest_kernelbias.__all__:
        assert getattr(pytest_kernelbias, name) is not None


@pytest.mark.parametrize("name, home", sorted(pytest_kernelbias._MOVED.items()))
def test_a_moved_name_is_served_with_a_warning_naming_its_home(name, home):
    with pytest.warns(DeprecationWarning, match=f"moved to {home}.{name}"):
        old = getattr(pytest_kernelbias, name)
    assert old is getattr(importlib.import_module(home), name)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        pytest_kernelbias.nothing_here  # noqa: B018


def test_every_warning_has_one_base_and_every_error_another():
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if c.__module__ == errors.__name__]
    warnings = [c for c in classes if issubclass(c, Warning)]
    raised = [c for c in classes if not issubclass(c, Warning)]
    assert len(warnings) >= 7 and all(issubclass(c, errors.KernelAuditWarning) for c in warnings)
    assert all(issubclass(c, (errors.KernelBiasError, errors.AuditFailure)) for c in raised)


def test_every_error_the_package_raises_is_defined_in_the_errors_module():
    # A package-specific class raised anywhere must be importable from pytest_kernelbias.errors.
    import ast
    import builtins
    from pathlib import Path

    defined = {c for c, obj in vars(errors).items() if inspect.isclass(obj)}
    root = Path(pytest_kernelbias.__file__).parent
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and isinstance(node.exc.func, ast.Name):
                name = node.exc.func.id
                if name.endswith(("Error", "Failure")) and not hasattr(builtins, name):
                    assert name in defined, f"{path.name} raises {name}, which pytest_kernelbias.errors lacks"
