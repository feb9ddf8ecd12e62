"""The package is generated from the chapters; any drift between the two fails."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tools import export

ROOT = Path(__file__).resolve().parent.parent


def test_committed_package_matches_the_chapters():
    stale = export.drift()
    assert not stale, f"run `make export`: out of date: {[p.name for p in stale]}"


@pytest.fixture
def copy(tmp_path):
    """A scratch copy of the chapters and the package."""
    shutil.copytree(ROOT / "chapters", tmp_path / "chapters")
    shutil.copytree(ROOT / "llm_from_scratch", tmp_path / "llm_from_scratch",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def _first_exported_cell(chapters: Path) -> tuple[Path, dict, dict]:
    for path in sorted(chapters.glob("*.ipynb")):
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code" and "".join(cell["source"]).startswith(
                    "#| export"):
                return path, nb, cell
    raise AssertionError("no chapter exports anything")


def test_editing_an_exported_cell_without_export_is_drift(copy):
    path, nb, cell = _first_exported_cell(copy / "chapters")
    cell["source"] = "".join(cell["source"]) + "\n\nANSWER = 42\n"
    path.write_text(json.dumps(nb))
    stale = export.drift(copy / "chapters", copy / "llm_from_scratch")
    assert stale, "an edited chapter must make the committed module stale"
    export.export(copy / "chapters", copy / "llm_from_scratch")
    assert export.drift(copy / "chapters", copy / "llm_from_scratch") == []
    assert "ANSWER = 42" in stale[0].read_text()


def test_editing_a_generated_module_by_hand_is_drift(copy):
    module = next(p for p in (copy / "llm_from_scratch").rglob("*.py")
                  if export.is_generated(p))
    module.write_text(module.read_text() + "\n# a hand edit\n")
    assert export.drift(copy / "chapters", copy / "llm_from_scratch") == [module]


def test_generated_module_names_its_chapter(copy):
    path, _, cell = _first_exported_cell(copy / "chapters")
    module = "".join(cell["source"]).splitlines()[0].split()[-1]
    text = export.module_path(module, copy / "llm_from_scratch").read_text()
    assert text.startswith(export.HEADER_MARK)
    assert f"chapters/{path.name}" in text.splitlines()[0]


def test_a_module_no_chapter_exports_any_more_is_removed(copy):
    orphan = copy / "llm_from_scratch" / "orphan.py"
    orphan.write_text(export.HEADER_MARK + " from chapters/00_gone.ipynb.\n")
    assert orphan in export.drift(copy / "chapters", copy / "llm_from_scratch")
    export.export(copy / "chapters", copy / "llm_from_scratch")
    assert not orphan.exists()


def test_export_refuses_to_overwrite_a_hand_written_module(copy):
    path, nb, cell = _first_exported_cell(copy / "chapters")
    cell["source"] = "#| export config.profiles\nX = 1\n"
    path.write_text(json.dumps(nb))
    with pytest.raises(export.ExportError, match="hand-written"):
        export.drift(copy / "chapters", copy / "llm_from_scratch")


def test_a_malformed_directive_is_an_error(copy):
    path, nb, cell = _first_exported_cell(copy / "chapters")
    cell["source"] = "#| export: data\nX = 1\n"
    path.write_text(json.dumps(nb))
    with pytest.raises(export.ExportError, match="malformed"):
        export.exported_cells(copy / "chapters")
