"""The package's shape: parts of the loop as subpackages around a small core, no module too long,
no import cycle between modules, every part documented, and tests/unit mirroring src/rlaif."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "rlaif"
UNIT = Path(__file__).resolve().parent
PARTS = ("backends", "evaluate", "judge", "report", "synth", "train")
MAX_ROOT_MODULES = 11
MAX_LINES = 500


def module_name(path: Path) -> str:
    parts = ("rlaif",) + path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Every rlaif module ``path`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rlaif"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in known else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("rlaif")}
    return found & known


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path that returns to its start, or None (depth-first search)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def module_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in SRC.rglob("*.py")}
    known = set(files)
    # a package's own __init__ (rlaif, and the lazy re-exports of each part) is not an edge
    return {name: imports_of(path, known) - {"rlaif", name} for name, path in files.items()}


def test_find_cycle_finds_a_planted_cycle_and_accepts_a_tree():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_between_modules():
    assert find_cycle(module_graph()) is None


def test_the_parts_import_each_other_without_a_cycle():
    graph: dict[str, set[str]] = {}
    for name, deps in module_graph().items():
        part = name.split(".")[1] if name.count(".") >= 2 else "core"
        graph.setdefault(part, set())
        graph[part] |= {d.split(".")[1] if d.count(".") >= 2 else "core" for d in deps} - {part, "core"}
    assert find_cycle(graph) is None


def test_a_small_core_and_one_folder_per_part():
    root_modules = sorted(p.name for p in SRC.glob("*.py"))
    assert len(root_modules) <= MAX_ROOT_MODULES, root_modules
    packages = sorted(p.name for p in SRC.iterdir() if (p / "__init__.py").is_file())
    assert packages == list(PARTS)


def test_no_module_is_longer_than_the_limit():
    long = {str(p.relative_to(SRC)): n for p in SRC.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long


def test_no_data_folder_shares_a_name_with_a_module():
    modules = {p.stem for p in SRC.rglob("*.py")}
    data_dirs = {p.name for p in SRC.rglob("*") if p.is_dir() and not (p / "__init__.py").exists()
                 and p.name != "__pycache__"}
    assert data_dirs and not data_dirs & modules


@pytest.mark.parametrize("part", PARTS)
def test_each_part_says_what_it_does_and_reexports_what_it_names(part):
    pkg = importlib.import_module(f"rlaif.{part}")
    assert pkg.__doc__ and len(pkg.__doc__.strip().splitlines()) >= 2
    names = getattr(pkg, "__all__", [])
    assert names == sorted(names)
    for name in names:
        assert getattr(pkg, name) is not None


def test_unit_tests_mirror_the_source():
    """Every unit test folder is a part, and every test_<name>.py in it names a module there (or the
    part's data folder of that name, for checks on shipped data)."""
    for folder in (p for p in UNIT.iterdir() if p.is_dir() and p.name != "__pycache__"):
        assert folder.name in PARTS, folder
        for test in folder.glob("test_*.py"):
            target = SRC / folder.name / test.stem.removeprefix("test_")
            assert target.with_suffix(".py").is_file() or target.is_dir(), test
    for test in UNIT.glob("test_*.py"):
        if test.name != "test_layout.py":
            assert (SRC / f"{test.stem.removeprefix('test_')}.py").is_file(), test
