"""Chapter sources follow the rules the book build depends on."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tools import export, nbclean

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))


def test_every_notebook_is_a_numbered_chapter_or_a_lettered_appendix():
    assert CHAPTERS, "no chapters found"
    for path in CHAPTERS:
        assert re.fullmatch(r"(\d\d|[A-Z])_[a-z0-9_]+\.ipynb", path.name), path.name


def test_appendices_come_after_the_numbered_chapters():
    names = [p.name for p in export.chapter_files()]
    assert sorted(names) == sorted(p.name for p in CHAPTERS)  # none left out
    numbered = [n[0].isdigit() for n in names]
    assert numbered == sorted(numbered, reverse=True), names
    assert any(not n for n in numbered), "no appendix found"


def test_the_table_of_contents_lists_chapters_then_appendices_then_references():
    toc = (ROOT / "_toc.yml").read_text()
    files = re.findall(r"file:\s*(\S+)", toc)
    assert files[-1] == "book/references"
    chapters = [f for f in files if f.startswith("chapters/")]
    assert chapters == [f"chapters/{p.stem}" for p in export.chapter_files()]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_source_is_clean(path):
    assert nbclean.problems(path) == []


def test_every_chapter_is_in_the_table_of_contents():
    toc = (ROOT / "_toc.yml").read_text()
    listed = set(re.findall(r"file:\s*chapters/(\S+)", toc))
    assert listed == {p.stem for p in CHAPTERS}


def _notebook(tmp_path: Path, cells: list[dict]) -> Path:
    nb = {"cells": cells, "metadata": {"language_info": {"name": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    for i, cell in enumerate(cells):
        cell.setdefault("id", f"cell-{i}")
        cell.setdefault("metadata", {})
        if cell["cell_type"] == "code":
            cell.setdefault("outputs", [])
            cell.setdefault("execution_count", None)
    path = tmp_path / "99_example.ipynb"
    path.write_text(nbclean.dumps(nb))
    return path


PARAMS = {"cell_type": "code", "source": 'profile = "auto"',
          "metadata": {"tags": ["parameters"]}}


def test_hygiene_accepts_a_clean_notebook(tmp_path):
    assert nbclean.problems(_notebook(tmp_path, [dict(PARAMS)])) == []


def test_hygiene_rejects_a_committed_output(tmp_path):
    cell = {"cell_type": "code", "source": "print(1)", "execution_count": 1,
            "outputs": [{"output_type": "stream", "name": "stdout", "text": "1\n"}]}
    found = nbclean.problems(_notebook(tmp_path, [dict(PARAMS), cell]))
    assert any("committed with outputs" in p for p in found)
    assert any("execution count" in p for p in found)


def test_hygiene_rejects_long_lines_and_a_missing_parameters_cell(tmp_path):
    cell = {"cell_type": "code", "source": "x = '" + "a" * 90 + "'"}
    found = nbclean.problems(_notebook(tmp_path, [cell]))
    assert any("characters (at most 88)" in p for p in found)
    assert any("tagged 'parameters'" in p for p in found)


def test_hygiene_rejects_invalid_nbformat(tmp_path):
    path = tmp_path / "99_bad.ipynb"
    path.write_text(json.dumps({"cells": [{"cell_type": "code"}], "nbformat": 4}))
    assert "not a valid notebook" in nbclean.problems(path)[0]


def test_nbclean_strips_outputs_and_counts(tmp_path):
    cell = {"cell_type": "code", "source": "print(1)", "execution_count": 3,
            "outputs": [{"output_type": "stream", "name": "stdout", "text": "1\n"}],
            "metadata": {"lines_to_next_cell": 2}}
    path = _notebook(tmp_path, [dict(PARAMS), cell])
    assert nbclean.main([str(path)]) == 0
    assert nbclean.problems(path) == []


def _figure_names() -> list[str]:
    names = []
    for path in CHAPTERS:
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            figure = cell.get("metadata", {}).get("mystnb", {}).get("figure", {})
            names += [figure["name"]] if "name" in figure else []
    return names


def test_figure_names_are_unique_across_the_book():
    """A name used twice leaves {numref} unresolved: the PDF prints the raw label."""
    names = _figure_names()
    assert len(names) > 20
    assert not {n for n in names if names.count(n) > 1}


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_no_prose_line_ends_inside_a_hyphenated_word(path):
    """Markdown joins lines with a space: "data-" then "parallel" prints as "data-
    parallel". (A line may end with " -", a dash between words.)"""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    broken = [line for cell in cells if cell["cell_type"] == "markdown"
              for line in "".join(cell["source"]).splitlines()
              if re.search(r"[A-Za-z]-$", line)]
    assert not broken, broken[:5]


GLUE_ROLE = re.compile(r"\{glue(?::\w+)?\}`([\w.-]+)(?::[^`]*)?`")


@pytest.mark.parametrize("path", export.chapter_files(), ids=lambda p: p.stem)
def test_each_summary_states_findings_read_from_the_outputs(path):
    """The summary opens with what this run found, its numbers interpolated from the
    outputs with myst-nb's glue (``{glue:text}`key``), never typed into the prose.
    That each interpolated key is glued by the executed chapter is checked on its
    outputs (test_book_outputs)."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    summary = [c for c in nb["cells"] if c["cell_type"] == "markdown"
               and re.search(r"^## Summary", "".join(c["source"]), re.M)]
    assert len(summary) == 1, "one markdown cell with a '## Summary' heading"
    body = "".join(summary[0]["source"]).split("## Summary", 1)[1]
    assert GLUE_ROLE.search(body), "the summary interpolates no measured value"
