"""The book says what it holds: the pipeline strip and the preface's chapter list follow
``_toc.yml``. The reference is ``_toc.yml`` read by a YAML parser (PyYAML), not the
line reader that figures.book_outline uses, and titles read from the notebooks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib
import pytest
import yaml
from matplotlib.text import Annotation

from llm_from_scratch.book.figures import book_outline, pipeline_figure
from tools import book

matplotlib.use("Agg")
ROOT = Path(__file__).resolve().parent.parent


def toc_files(toc: Path) -> list[str]:
    """Every ``file:`` of a Jupyter Book table of contents, parts included, in order."""
    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                yield node["file"]
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)
    return list(walk(yaml.safe_load(toc.read_text())))


def strip_boxes(fig) -> list[tuple[str, str]]:
    """(number, label) of each box of the strip, row by row, left to right."""
    texts = [t for t in fig.axes[0].texts if not isinstance(t, Annotation)]  # arrows
    texts = sorted(texts, key=lambda t: (-t.get_position()[1], t.get_position()[0]))
    return [(t.get_text().split("\n")[0], " ".join(t.get_text().split("\n")[1:]))
            for t in texts]


def title(path: Path) -> str:
    return json.loads(path.read_text())["cells"][0]["source"][0].lstrip("# ").strip()


def test_pipeline_strip_has_one_box_per_chapter_of_the_toc():
    chapters = [f for f in toc_files(ROOT / "_toc.yml")
                if re.fullmatch(r"chapters/\d\d_\w+", f)]
    assert chapters, "no numbered chapter in _toc.yml"
    boxes = strip_boxes(pipeline_figure(chapters[0][9:11]))
    assert [n for n, _ in boxes] == [f[9:11] for f in chapters]
    for (_, label), f in zip(boxes, chapters):
        assert label == title(ROOT / f"{f}.ipynb").split(":")[0], f


def make_book(tmp_path: Path, names: list[str], parts: bool) -> Path:
    """A table of contents and titled notebooks, as the book will be at some stage."""
    (tmp_path / "chapters").mkdir()
    for name in names:
        cell = {"cell_type": "markdown", "metadata": {},
                "source": [f"# Title of {name}: the rest\n", "\n", "Prose."]}
        (tmp_path / "chapters" / f"{name}.ipynb").write_text(json.dumps(
            {"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    files = [f"chapters/{n}" for n in names] + ["book/references"]
    if parts:
        body = {"parts": [{"caption": "Chapters", "chapters": [
            {"file": f} for f in files[:-1]]}, {"caption": "End", "chapters": [
                {"file": files[-1]}]}]}
    else:
        body = {"chapters": [{"file": f} for f in files]}
    toc = tmp_path / "_toc.yml"
    toc.write_text(yaml.safe_dump({"format": "jb-book", "root": "book/preface",
                                   **body}, sort_keys=False))
    return toc


@pytest.mark.parametrize("parts", [False, True], ids=["flat", "parts"])
def test_strip_and_preface_follow_the_toc_as_the_outline_fills_in(tmp_path, parts):
    names = ["01_data", "02_attention", "06_data_parallel", "A_troubleshooting",
             "B_machinery"]
    toc = make_book(tmp_path, names, parts)
    assert [f for f in toc_files(toc) if f.startswith("chapters/")] == [
        f"chapters/{n}" for n in names]
    fig = pipeline_figure("06", toc)
    assert strip_boxes(fig) == [("01", "Title of 01_data"),
                                ("02", "Title of 02_attention"),
                                ("06", "Title of 06_data_parallel")]
    preface = (ROOT / "book" / "preface.md").read_text()
    text = book.chapter_list(preface, book_outline(toc))
    assert "{chapter-list}" not in text
    items = re.findall(r"^(?:(\d+)\.|- \*\*([A-Z])\.) ", text, re.M)
    assert [a or b for a, b in items] == ["1", "2", "6", "A", "B"]
    assert "**Title of 06_data_parallel.** Training on several devices" in text
    assert "**A. Title of A_troubleshooting.** Loss spikes" in text
    for absent in ("tensor and pipeline", "DPO", "Every `llmfs` command"):
        assert absent not in text  # chapters 07, 09 and appendix C: not in this toc


def test_preface_lists_exactly_the_books_chapters():
    text = book.chapter_list((ROOT / "book" / "preface.md").read_text(),
                             book_outline(ROOT / "_toc.yml"))
    listed = re.findall(r"^(\d+)\. \*\*(.+?)\.\*\*", text, re.M)
    chapters = [f for f in toc_files(ROOT / "_toc.yml")
                if re.fullmatch(r"chapters/\d\d_\w+", f)]
    assert [(int(f[9:11]), title(ROOT / f"{f}.ipynb").split(":")[0])
            for f in chapters] == [(int(n), label) for n, label in listed]


def test_strip_rejects_a_chapter_the_toc_does_not_hold():
    with pytest.raises(ValueError, match="not among _toc.yml's chapters"):
        pipeline_figure("99")
