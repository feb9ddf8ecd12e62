"""The diagram primitives keep every figure legible at print size."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from llm_from_scratch.book.figures import (PRINT_WIDTH, SMALL, Diagram, printed_sizes)  # noqa: E402


def pdf_of(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="pdf")
    plt.close(fig)
    return buf.getvalue()


def test_diagram_wider_than_the_printed_text_is_refused():
    with pytest.raises(ValueError, match="at most"):
        Diagram(PRINT_WIDTH + 0.5, 1)


def test_diagram_text_below_7pt_is_refused():
    d = Diagram(3, 1)
    with pytest.raises(ValueError, match="does not print legibly"):
        d.text(1, 0.5, "tiny", size=SMALL - 1)
    plt.close(d.fig)


def test_diagram_primitives_print_their_text_at_the_size_asked():
    d = Diagram(4, 1.5)
    a = d.box(0.6, 0.75, 0.8, 0.4, "x", style="data", size=8)
    b = d.box(2.0, 0.75, 0.8, 0.4, "layer", style="accent")
    d.arrow(a.right, b.left, "flows")
    d.grid(3.0, 1.2, 2, 3, values=lambda r, c: r + c, label="(2, 3)")
    assert sorted(set(printed_sizes(pdf_of(d.fig)))) == [SMALL, 8.0]


def test_printed_sizes_shrink_a_figure_wider_than_the_text():
    fig = plt.figure(figsize=(2 * PRINT_WIDTH, 2))
    fig.text(0.5, 0.5, "wide", fontsize=10)
    assert printed_sizes(pdf_of(fig)) == pytest.approx([5.0], abs=0.01)
