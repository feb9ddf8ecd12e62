"""Figures shared by several chapters (hand-written: they draw, they teach nothing)."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.patches import FancyBboxPatch

PIPELINE = [
    ("01", "data &\ntokenizer"),
    ("02", "attention"),
    ("03", "the GPT\nmodel"),
    ("04", "pre-\ntraining"),
    ("05", "generation"),
    ("06", "scaling\nout"),
    ("07", "instruction\ntuning"),
    ("08", "DPO"),
    ("09", "evaluation"),
]


def pipeline_figure(current: str):
    """The book's pipeline as a row of boxes, with chapter ``current`` highlighted."""
    fig, ax = plt.subplots(figsize=(9.0, 1.5))
    width, gap = 0.9, 0.18
    for i, (number, label) in enumerate(PIPELINE):
        x = i * (width + gap)
        here = number == current
        ax.add_patch(FancyBboxPatch(
            (x, 0), width, 1, boxstyle="round,pad=0.02,rounding_size=0.08",
            facecolor="#1f77b4" if here else "#e8eef5",
            edgecolor="#1f77b4", linewidth=1.5 if here else 0.8))
        ax.text(x + width / 2, 0.5, f"{number}\n{label}", ha="center", va="center",
                fontsize=7.5, color="white" if here else "#223",
                fontweight="bold" if here else "normal")
        if i:
            ax.annotate("", xy=(x - 0.01, 0.5), xytext=(x - gap + 0.01, 0.5),
                        arrowprops=dict(arrowstyle="->", color="#667", lw=0.8))
    ax.set_xlim(-0.05, len(PIPELINE) * (width + gap) - gap + 0.05)
    ax.set_ylim(-0.05, 1.05)
    ax.axis("off")
    fig.tight_layout()
    return fig
