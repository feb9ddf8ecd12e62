"""The package's layout: wings that import downward only, and imports at the top of
each file (issue 28). ``long_cells`` counts the chapters' code cells over 60 lines."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest

from llm_from_scratch import WINGS

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "llm_from_scratch"

# A wing's tier in WINGS: a module imports only from its own wing and earlier tiers.
RANK = {wing: tier for tier, wings in enumerate(WINGS) for wing in wings}


def wing_of(module: str) -> str:
    """'llm_from_scratch.data.corpus' -> 'data'; the package root -> '__main__'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in RANK else "__main__"


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join(parts)


def imports(path: Path):
    """(imported module, line, inside a function?) for each import of our package."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef,
                                                       ast.AsyncFunctionDef))
            if isinstance(child, ast.ImportFrom) and child.module and \
                    child.module.startswith("llm_from_scratch"):
                targets = ([child.module] if child.module != "llm_from_scratch" else
                           [f"llm_from_scratch.{a.name}" for a in child.names])
                found.extend((t, child.lineno, in_function) for t in targets)
            elif isinstance(child, ast.Import):
                found.extend((a.name, child.lineno, in_function) for a in child.names
                             if a.name.startswith("llm_from_scratch."))
            visit(child, inside)

    visit(tree, False)
    return found


def modules():
    return sorted(PACKAGE.rglob("*.py"))


def test_every_wing_is_known_and_says_what_it_may_import():
    wings = sorted(p.name for p in PACKAGE.iterdir()
                   if p.is_dir() and (p / "__init__.py").exists())
    assert set(wings) == set(RANK) - {"__main__"}, wings
    for wing in wings:
        doc = ast.get_docstring(ast.parse((PACKAGE / wing / "__init__.py").read_text()))
        assert doc and "May import" in doc, f"{wing}/__init__.py: say what it holds"


def upward_imports():
    bad = []
    for path in modules():
        me = module_name(path)
        for target, line, _ in imports(path):
            a, b = wing_of(me), wing_of(target)
            if a != b and (RANK[b] > RANK[a] or (RANK[b] == RANK[a])):
                bad.append(f"{path.relative_to(ROOT)} imports {target}")
    return bad


def function_imports():
    return [f"{path.relative_to(ROOT)} imports {target}"
            for path in modules() for target, line, inside in imports(path) if inside]


def long_cells(limit: int = 60):
    out = []
    for nb_path in sorted((ROOT / "chapters").glob("*.ipynb")):
        for cell in json.loads(nb_path.read_text(encoding="utf-8"))["cells"]:
            n = len("".join(cell["source"]).splitlines())
            if cell["cell_type"] == "code" and n > limit:
                out.append(f"{nb_path.name} cell {cell.get('id')}: {n} lines")
    return out


@pytest.mark.parametrize("check", [upward_imports, function_imports])
def test_imports_run_downward_and_sit_at_the_top(check):
    problems = check()
    assert not problems, "\n".join(problems)


def test_the_checks_catch_an_upward_and_a_function_level_import(tmp_path, monkeypatch):
    """A model module importing the loop, inside a function: both checks name it."""
    package = tmp_path / "llm_from_scratch"
    (package / "model").mkdir(parents=True)
    (package / "model" / "bad.py").write_text(
        "def f():\n    from llm_from_scratch.training.loop import train\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", package)
    expected = ["llm_from_scratch/model/bad.py imports llm_from_scratch.training.loop"]
    assert upward_imports() == expected and function_imports() == expected

