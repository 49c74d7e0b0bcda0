"""The package's parts import only the parts below them: the graph of runtime imports between subpackages and
top-level modules has no cycle (imports under `if TYPE_CHECKING:` are annotations, not imports)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest_kernelbias

ROOT = Path(pytest_kernelbias.__file__).parent


def _part(module: str) -> str:
    """The part a module (named below the package) belongs to: its subpackage, or the top-level module."""
    return module.split(".")[0]


def _runtime_imports(tree: ast.Module) -> list[ast.ImportFrom]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = []  # annotation-only imports
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            found.append(node)
    return found


def _is_module(package: list[str], name: str) -> bool:
    folder = ROOT.parent.joinpath(*package)
    return (folder / f"{name}.py").exists() or (folder / name / "__init__.py").exists()


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        parts = list(rel.parts)
        if parts == ["pytest_kernelbias", "__init__"]:
            continue  # the public API imports every part by design
        package = parts[:-1]
        source = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        for node in _runtime_imports(ast.parse(path.read_text())):
            base = package[:len(package) - (node.level - 1)]
            # `from . import name` imports the module `name` (or, from the root, a name the root defines).
            targets = ([".".join(base + [node.module])] if node.module else
                       [".".join(base + [alias.name if _is_module(base, alias.name) else "__init__"])
                        for alias in node.names])
            for target in targets:
                a = _part(source.removeprefix("pytest_kernelbias."))
                b = _part(target.removeprefix("pytest_kernelbias."))
                if a != b:
                    graph.setdefault(a, set()).add(b)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle of the graph as a path (first node repeated at the end), or [] when it has none."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return []

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return []


def test_the_finder_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}}) == []


def test_no_part_imports_the_package_root():
    # The root imports every part (on first use); a part that imported it back would close a cycle through
    # all of them. The version every part may need lives in the leaf _version.py.
    graph = import_graph()
    assert not {part for part, targets in graph.items() if "" in targets or "__init__" in targets}


def test_no_part_of_the_package_imports_a_part_that_imports_it_back():
    graph = import_graph()
    assert {"spec", "plan", "execution", "evaluation", "analysis", "data"} <= set(graph)  # the walk saw the parts
    assert find_cycle(graph) == []


def test_only_the_execution_part_tells_one_executor_from_another():
    # The executors own their differences (where checks run, what keys hold, what is checked after a run):
    # no module outside execution/ names one, so adding an executor changes execution/ alone.
    named = []
    for path in ROOT.rglob("*.py"):
        if path.parent.name == "execution":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in ("ray", "pool", "serial", "seed-batched"):
                named.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}")
    assert named == []


def private_reaches(root: Path = ROOT) -> list[str]:
    """Every import of another part's private module (`from ..analysis._effects import ...` outside analysis/)."""
    found = []
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts == ["pytest_kernelbias", "__init__"]:
            continue
        for node in _runtime_imports(ast.parse(path.read_text())) + _annotation_imports(path):
            target = parts[:len(parts) - node.level] + (node.module or "").split(".")
            if len(target) > 2 and target[1] != parts[1] and target[2].startswith("_"):
                found.append(f"{path.relative_to(root).as_posix()}:{node.lineno} {'.'.join(target[1:])}")
    return found


def _annotation_imports(path: Path) -> list[ast.ImportFrom]:
    # A part's API serves type checkers too: imports under TYPE_CHECKING count.
    return [node for top in ast.walk(ast.parse(path.read_text()))
            if isinstance(top, ast.If) and "TYPE_CHECKING" in ast.unparse(top.test)
            for node in ast.walk(top) if isinstance(node, ast.ImportFrom) and node.level]


def test_no_part_imports_another_parts_private_module():
    # Each part's __init__ is its API (loaded on first use, _lazy.py): what another part needs is named there.
    assert private_reaches() == []


def test_the_private_import_check_sees_one(tmp_path):
    package = tmp_path / "pytest_kernelbias"
    for folder in ("analysis", "training"):
        (package / folder).mkdir(parents=True)
    (package / "training" / "_trainer.py").write_text(
        "from ..analysis import paired_effect\nfrom ..analysis._effects import paired_effect\n"
        "from ._seed_batched import train_seeds\n")
    (package / "training" / "_seed_batched.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..analysis._effects import Effect\n")
    assert sorted(private_reaches(package)) == ["training/_seed_batched.py:3 analysis._effects",
                                                "training/_trainer.py:2 analysis._effects"]


def test_every_name_a_part_offers_loads_from_its_home():
    import importlib

    for part in ("analysis", "data", "evaluation", "execution", "fingerprints", "intervention", "reporting",
                 "training", "validate"):
        module = importlib.import_module(f"pytest_kernelbias.{part}")
        for name in module.__all__:
            assert getattr(module, name) is not None, f"{part}.{name}"
