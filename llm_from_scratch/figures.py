"""Figures shared by several chapters (hand-written: they draw, they teach nothing).

The pipeline strip that opens each chapter is drawn from the book's table of contents,
``_toc.yml``: one box per numbered chapter listed there, labelled with the chapter's
title, so the strip shows the book as it stands, never chapters it does not hold.
"""

from __future__ import annotations

import json
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.patches import FancyBboxPatch

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = re.compile(r"chapters/(?P<number>\d\d|[A-Z])_[a-z0-9_]+")


@dataclass(frozen=True)
class Entry:
    """One chapter or appendix of the table of contents."""

    number: str  # "01" for a chapter, "B" for an appendix
    file: str  # as _toc.yml names it, e.g. "chapters/01_data"
    title: str  # the notebook's title, e.g. "Data: from raw stories to tokens"

    @property
    def label(self) -> str:
        """The title's head, before its colon: "Data", "The GPT model" (a leading
        "Chapter 6:" or "Appendix B:" is not part of it)."""
        title = re.sub(r"^(Chapter|Appendix)\s+\w+\s*[:.]\s*", "", self.title)
        return title.split(":", 1)[0].strip()

    @property
    def is_appendix(self) -> bool:
        return self.number.isalpha()


def find_toc() -> Path:
    """The book's ``_toc.yml``: beside the package, else in the working directory or
    one of its parents (a chapter runs in ``chapters/``)."""
    for folder in (ROOT, Path.cwd(), *Path.cwd().parents):
        if (folder / "_toc.yml").is_file():
            return folder / "_toc.yml"
    raise FileNotFoundError("no _toc.yml beside the package or above the working "
                            "directory: run this from a checkout of the book")


def notebook_title(path: Path) -> str:
    """The first heading of a notebook's first cell, without its ``#``."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    first = "".join(cells[0]["source"]).strip().splitlines()[0] if cells else ""
    return first.lstrip("#").strip() or path.stem


def book_outline(toc: str | Path | None = None) -> list[Entry]:
    """The chapters and appendices that ``_toc.yml`` lists, in its order.

    Every ``file:`` entry naming ``chapters/NN_name`` or ``chapters/X_name`` counts
    (whether or not the entries are grouped into parts); the preface and the
    references are not chapters. Titles come from the notebooks beside the file.
    """
    toc = Path(toc) if toc is not None else find_toc()
    entries = []
    for line in toc.read_text(encoding="utf-8").splitlines():
        found = re.match(r"\s*(?:-\s*)?file:\s*['\"]?([^'\"#\s]+)", line)
        name = found and NOTEBOOK.fullmatch(found.group(1).removesuffix(".ipynb"))
        if name:
            path = toc.parent / f"{name.group(0)}.ipynb"
            title = notebook_title(path) if path.exists() else path.stem
            entries.append(Entry(name.group("number"), name.group(0), title))
    return entries


def pipeline_figure(current: str | None, toc: str | Path | None = None):
    """The book's pipeline, one box per numbered chapter of ``_toc.yml``, with chapter
    ``current`` (e.g. ``"04"``) highlighted; ``None`` highlights none."""
    chapters = [e for e in book_outline(toc) if not e.is_appendix]
    if current is not None and current not in {e.number for e in chapters}:
        raise ValueError(f"chapter {current!r} is not among _toc.yml's chapters "
                         f"{[e.number for e in chapters]}")
    width, gap = 0.9, 0.18
    fig, ax = plt.subplots(figsize=(min(9.0, 0.2 + len(chapters) * 1.0), 1.5))
    for i, entry in enumerate(chapters):
        x = i * (width + gap)
        here = entry.number == current
        ax.add_patch(FancyBboxPatch(
            (x, 0), width, 1, boxstyle="round,pad=0.02,rounding_size=0.08",
            facecolor="#1f77b4" if here else "#e8eef5",
            edgecolor="#1f77b4", linewidth=1.5 if here else 0.8))
        lines = textwrap.wrap(entry.label, 11, break_long_words=False) or [""]
        size = 7.5 * min(1.0, 11 / max(len(s) for s in lines))  # a long word fits
        ax.text(x + width / 2, 0.5, "\n".join([entry.number, *lines]), ha="center",
                va="center", fontsize=size, color="white" if here else "#223",
                fontweight="bold" if here else "normal")
        if i:
            ax.annotate("", xy=(x - 0.01, 0.5), xytext=(x - gap + 0.01, 0.5),
                        arrowprops=dict(arrowstyle="->", color="#667", lw=0.8))
    ax.set_xlim(-0.05, len(chapters) * (width + gap) - gap + 0.05)
    ax.set_ylim(-0.05, 1.05)
    ax.axis("off")
    fig.tight_layout()
    return fig
