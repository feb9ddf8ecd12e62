"""The package's layout: wings that import downward only, and imports at the top of
each file (issue 28). ``long_cells`` counts the chapters' code cells over 60 lines."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from llm_from_scratch.book.layout import TIER, our_imports, wing_of

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "llm_from_scratch"


def test_every_wing_is_known_and_says_what_it_may_import():
    wings = sorted(p.name for p in PACKAGE.iterdir()
                   if p.is_dir() and (p / "__init__.py").exists())
    assert set(wings) == set(TIER) - {"__main__"}, wings
    for wing in wings:
        doc = ast.get_docstring(ast.parse((PACKAGE / wing / "__init__.py").read_text()))
        assert doc and "May import" in doc, f"{wing}/__init__.py: say what it holds"


def upward_imports(package: Path = PACKAGE) -> list[str]:
    """Imports from a later tier of WINGS, or from a neighbour in the same tier."""
    return [f"{me} imports {target}" for me, target, _, _ in our_imports(package)
            if wing_of(me) != wing_of(target)
            and TIER[wing_of(target)] >= TIER[wing_of(me)]]


def function_imports(package: Path = PACKAGE) -> list[str]:
    return [f"{me} imports {target}"
            for me, target, _, inside in our_imports(package) if inside]


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


def test_the_checks_catch_an_upward_and_a_function_level_import(tmp_path):
    """A model module importing the loop, inside a function: both checks name it."""
    package = tmp_path / "llm_from_scratch"
    (package / "model").mkdir(parents=True)
    (package / "model" / "bad.py").write_text(
        "def f():\n    from llm_from_scratch.training.loop import train\n")
    expected = ["llm_from_scratch.model.bad imports llm_from_scratch.training.loop"]
    assert upward_imports(package) == expected == function_imports(package)
