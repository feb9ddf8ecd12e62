"""Figures shared by several chapters (hand-written: they draw, they teach nothing).

Concept diagrams (the block, the heads, the cache) are drawn with the few primitives of
:class:`Diagram` so that every chapter's diagrams look like one book: a canvas measured
in inches at print size (never wider than the PDF's text, so nothing is shrunk), boxes,
arrows, tensor grids and labels, one palette, and text never below 7 pt.

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
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle

ROOT = Path(__file__).resolve().parents[2]  # the checkout: llm_from_scratch/book/..
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
    # Up to six boxes in a row; more go in two rows (the arrow runs from the end of
    # the first to the start of the second), so that each box is wide enough for
    # its longest word at 7.5 pt and the arrows between boxes stay visible.
    per_row = len(chapters) if len(chapters) <= 6 else -(-len(chapters) // 2)
    rows = -(-len(chapters) // per_row) if chapters else 1
    width, height, gap, row_gap = 1.0, 0.62, 0.24, 0.34
    wide = per_row * (width + gap) - gap + 0.1
    scale = min(1.0, CANVAS_WIDTH / wide)  # one data unit is `scale` inches
    tall = rows * height + (rows - 1) * row_gap + 0.1
    fig, ax = plt.subplots(figsize=(wide * scale, tall * scale))
    ends = []
    for i, entry in enumerate(chapters):
        row, col = divmod(i, per_row)
        x, y = col * (width + gap), (rows - 1 - row) * (height + row_gap)
        here = entry.number == current
        ax.add_patch(FancyBboxPatch(
            (x, y), width, height, boxstyle="round,pad=0.02,rounding_size=0.06",
            facecolor="#1f77b4" if here else "#e8eef5",
            edgecolor="#1f77b4", linewidth=1.5 if here else 0.8))
        # A line of the box holds about width / (0.6 em) characters, with a margin;
        # words never break, and the text shrinks for a long one, never below 7 pt.
        chars = 0.85 * width * scale * 72 / (0.6 * 7.5)
        lines = textwrap.wrap(entry.label, int(chars), break_long_words=False) or [""]
        size = max(SMALL, 7.5 * min(1.0, chars / max(len(s) for s in lines)))
        ax.text(x + width / 2, y + height / 2, "\n".join([entry.number, *lines]),
                ha="center", va="center", fontsize=size,
                color="white" if here else "#223")
        ends.append((x, y))
    arrow = dict(arrowstyle="->", color="#667", lw=0.8)
    for (x0, y0), (x1, y1) in zip(ends, ends[1:]):
        if y0 == y1:  # the next box of the row
            ax.annotate("", xy=(x1 - 0.03, y1 + height / 2),
                        xytext=(x0 + width + 0.03, y0 + height / 2), arrowprops=arrow)
        else:  # down from the row's last box, back along the gap, into the next row
            mid = y1 + height + row_gap / 2
            ax.plot([x0 + width / 2, x0 + width / 2, x1 + width / 2],
                    [y0 - 0.03, mid, mid], color="#667", lw=0.8)
            ax.annotate("", xy=(x1 + width / 2, y1 + height + 0.03),
                        xytext=(x1 + width / 2, mid), arrowprops=arrow)
    ax.set_xlim(-0.06, wide - 0.04)  # the boxes' rounding and edges stay inside
    ax.set_ylim(-0.06, tall - 0.04)
    ax.axis("off")
    fig.subplots_adjust(0, 0, 1, 1)
    return fig


# --- Concept diagrams -------------------------------------------------------------

PRINT_WIDTH = 6.69  # inches: the PDF's text width (A4 less two 2 cm margins)
CANVAS_WIDTH = PRINT_WIDTH - 0.25  # a saved figure gains 0.1 in of padding each side
DESIGN_WIDTH = 7.0  # the widest a diagram may be laid out (then drawn at CANVAS_WIDTH)
FONT = 8.0  # points: a diagram's ordinary text
SMALL = 7.0  # points: the smallest text the book prints (a test holds figures to it)
PALETTE = {  # fill colours by role; edges are one dark grey
    "data": "#e8eef5",  # a tensor or a batch of data
    "op": "#fdf1dc",  # an operation: a layer, a function
    "accent": "#1f77b4",  # the thing the figure is about (white text)
    "muted": "#f3f3f3",  # context, padding, what is skipped
    "mark": "#f6d5cf",  # masked out, discarded
    "keep": "#cfe8d4",  # kept, cached, attended to
    "none": "none",
}
EDGE = "#334"


@dataclass(frozen=True)
class Box:
    """A rectangle placed on a diagram, by its centre and size (inches)."""

    x: float
    y: float
    w: float
    h: float

    @property
    def left(self) -> tuple[float, float]:
        return (self.x - self.w / 2, self.y)

    @property
    def right(self) -> tuple[float, float]:
        return (self.x + self.w / 2, self.y)

    @property
    def top(self) -> tuple[float, float]:
        return (self.x, self.y + self.h / 2)

    @property
    def bottom(self) -> tuple[float, float]:
        return (self.x, self.y - self.h / 2)


def _fill(style: str) -> str:
    return PALETTE.get(style, style)  # a role, or a colour given directly


class Diagram:
    """A canvas for a concept diagram, in inches at print size: ``Diagram(6, 2)`` is
    6 in wide and 2 in high, and a point at (1, 0.5) is 1 in from the left edge and
    0.5 in from the bottom. Draw with :meth:`box`, :meth:`arrow`, :meth:`grid` and
    :meth:`text`; the cell's last expression ``d.fig`` (or ``d.show()``) shows it."""

    def __init__(self, width: float, height: float):
        if not 0 < width <= DESIGN_WIDTH:
            raise ValueError(f"a diagram is at most {DESIGN_WIDTH} in wide (the PDF's "
                             f"text width), got {width}")
        self.width, self.height = width, height
        # The notebook saves figures with 0.1 in of padding each side; a canvas wider
        # than CANVAS_WIDTH is drawn that much smaller, its text keeping its size.
        shrink = min(1.0, CANVAS_WIDTH / width)
        self.fig = plt.figure(figsize=(width * shrink, height * shrink))
        self.ax = self.fig.add_axes((0, 0, 1, 1))
        self.ax.set_xlim(0, width)
        self.ax.set_ylim(0, height)
        self.ax.axis("off")

    def text(self, x: float, y: float, s: str, size: float = FONT, **kw):
        """A label at (x, y), centred unless ``ha``/``va`` say otherwise."""
        if size < SMALL:
            raise ValueError(f"text below {SMALL} pt does not print legibly: {s!r}")
        kw.setdefault("ha", "center")
        kw.setdefault("va", "center")
        kw.setdefault("color", "#223")
        return self.ax.text(x, y, s, fontsize=size, **kw)

    def box(self, x: float, y: float, w: float, h: float, text: str = "",
            style: str = "op", size: float = FONT, rounded: bool = True,
            **text_kw) -> Box:
        """A box centred at (x, y) with ``text`` in it; ``style`` is a role of
        ``PALETTE`` ("data", "op", "accent", ...) or a colour."""
        boxstyle = ("round,pad=0,rounding_size=0.05" if rounded else "square,pad=0")
        self.ax.add_patch(FancyBboxPatch(
            (x - w / 2, y - h / 2), w, h, boxstyle=boxstyle, facecolor=_fill(style),
            edgecolor=EDGE if style != "accent" else PALETTE["accent"], linewidth=0.8))
        if text:
            text_kw.setdefault("color", "white" if style == "accent" else "#223")
            self.text(x, y, text, size=size, **text_kw)
        return Box(x, y, w, h)

    def arrow(self, start: tuple[float, float], end: tuple[float, float],
              text: str = "", curve: float = 0.0, style: str = "-|>",
              color: str = "#556", size: float = SMALL, offset=(0.0, 0.08), **kw):
        """An arrow from ``start`` to ``end`` (points, or a box's ``.left``/``.right``
        ...), optionally bent (``curve``, as matplotlib's arc3 radius) and labelled at
        its middle, shifted by ``offset``."""
        self.ax.add_patch(FancyArrowPatch(
            start, end, arrowstyle=style, mutation_scale=8, color=color, linewidth=0.8,
            connectionstyle=f"arc3,rad={curve}", shrinkA=1, shrinkB=1, **kw))
        if text:
            mx, my = (start[0] + end[0]) / 2, (start[1] + end[1]) / 2
            self.text(mx + offset[0], my + offset[1], text, size=size)

    def line(self, points, color: str = "#556", width: float = 0.8, **kw):
        """A plain polyline through ``points`` (no head), e.g. a residual path."""
        xs, ys = zip(*points)
        self.ax.plot(xs, ys, color=color, linewidth=width, **kw)

    def grid(self, x: float, y: float, rows: int, cols: int, cell: float = 0.16,
             styles=None, values=None, label: str = "", label_side: str = "below",
             size: float = SMALL) -> Box:
        """A tensor as a grid of ``rows`` x ``cols`` cells, its top-left corner at
        (x, y). ``styles`` is one role/colour for all cells or a function of
        (row, col) giving one; ``values`` a function giving each cell's text (or
        None); ``label`` is written below (or ``"above"``, ``"left"``)."""
        for r in range(rows):
            for c in range(cols):
                style = styles(r, c) if callable(styles) else (styles or "data")
                self.ax.add_patch(Rectangle(
                    (x + c * cell, y - (r + 1) * cell), cell, cell,
                    facecolor=_fill(style), edgecolor=EDGE, linewidth=0.5))
                value = values(r, c) if values else None
                if value not in (None, ""):
                    self.text(x + (c + 0.5) * cell, y - (r + 0.5) * cell, str(value),
                              size=size, color="white" if style == "accent" else "#223")
        w, h = cols * cell, rows * cell
        placed = Box(x + w / 2, y - h / 2, w, h)
        if label:
            at = {"below": (placed.x, y - h - 0.12, "center", "top"),
                  "above": (placed.x, y + 0.06, "center", "bottom"),
                  "left": (x - 0.08, placed.y, "right", "center"),
                  "right": (x + w + 0.08, placed.y, "left", "center")}[label_side]
            self.text(at[0], at[1], label, size=max(size, SMALL), ha=at[2], va=at[3])
        return placed

    def show(self):
        """The figure, for a cell's last line (a Jupyter figure output)."""
        return self.fig


def pdf_text_sizes(pdf: bytes) -> tuple[float, list[float]]:
    """The page width (points) of a one-page PDF written by matplotlib, and the size
    of every font it sets (the ``Tf`` operators of its content streams), for checking
    the printed size of a figure's text."""
    import zlib

    box = re.search(rb"/MediaBox\s*\[\s*[-\d.]+\s+[-\d.]+\s+([\d.]+)", pdf)
    if box is None:
        raise ValueError("not a PDF page: no /MediaBox")
    sizes = []
    for stream in re.finditer(rb"stream\r?\n(.*?)endstream", pdf, re.S):
        try:
            body = zlib.decompress(stream.group(1))
        except zlib.error:
            body = stream.group(1)
        sizes += [float(s) for s in re.findall(rb"/[\w.+-]+\s+([\d.]+)\s+Tf\b", body)]
    return float(box.group(1)), sizes


def printed_sizes(pdf: bytes, text_width: float = PRINT_WIDTH) -> list[float]:
    """Font sizes as printed: a figure wider than the text is scaled down to it."""
    width, sizes = pdf_text_sizes(pdf)
    scale = min(1.0, text_width * 72 / width)
    return [s * scale for s in sizes]
