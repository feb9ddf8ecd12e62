"""Small glue shared by every chapter: where artifacts live, device, seeds, progress.

Nothing here is taught in the book; the chapters only call it.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm as auto_tqdm
from tqdm.std import tqdm as std_tqdm

_PACKAGE_DIR = Path(__file__).resolve().parents[1]  # llm_from_scratch/ (config/..)


def artifacts_dir(profile: str) -> Path:
    """The directory where chapters leave results for each other, one per profile.

    ``$LLMFS_HOME/<profile>`` when LLMFS_HOME is set; otherwise ``artifacts/<profile>``
    in the source checkout the package runs from, or ``~/.cache/llm_from_scratch`` for
    an installed package.
    """
    if os.environ.get("LLMFS_HOME"):
        root = Path(os.environ["LLMFS_HOME"]).expanduser()
    elif (_PACKAGE_DIR.parent / "pyproject.toml").exists():
        root = _PACKAGE_DIR.parent / "artifacts"
    else:
        root = Path.home() / ".cache" / "llm_from_scratch"
    path = root / profile
    path.mkdir(parents=True, exist_ok=True)
    return path


def pick_device(prefer: str | None = None) -> torch.device:
    """``cuda`` when available, then Apple's ``mps``, else ``cpu`` (or ``prefer``)."""
    if prefer:
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (all devices) in one call."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def in_book_build() -> bool:
    """True while the book build executes chapters (it sets LLMFS_BOOK_BUILD=1)."""
    return os.environ.get("LLMFS_BOOK_BUILD") == "1"


def _plural(unit: str) -> str:
    """"story" -> "stories", "batch" -> "batches", "step" -> "steps"; tqdm's "it" and
    units that are not one plain word stay as they are."""
    if not unit.isalpha() or len(unit) < 3:
        return unit
    if unit.endswith("y") and unit[-2] not in "aeiou":
        return unit[:-1] + "ies"
    return unit + ("es" if unit.endswith(("s", "x", "ch", "sh")) else "s")


class _FinalLineBar(std_tqdm):
    """A bar that draws nothing while it runs and prints one ASCII line when closed:
    what was done, in how long, at what rate (never an estimate of time left, which
    means nothing on a page)."""

    def __init__(self, *args, **kwargs):
        # Kept here: a disabled bar (every rank but 0 of a distributed run) returns
        # from tqdm's __init__ before it stores the file as self.fp.
        self._devnull = open(os.devnull, "w")
        kwargs.update(file=self._devnull, ascii=True, ncols=80)
        super().__init__(*args, **kwargs)

    def final_line(self) -> str:
        d = self.format_dict
        n, total, elapsed, unit = d["n"], d["total"], d["elapsed"], d["unit"]
        start = d.get("initial") or 0  # a resumed run's bar starts where it stopped
        units = _plural(unit) if (total or n) != 1 else unit
        done = f"{n:,}/{total:,} {units}" if total else f"{n:,} {units}"
        if total and n < total:
            done = f"stopped at {done}"
        head = f"{d['prefix']}: " if d.get("prefix") else ""
        if start and n == start:  # nothing was left to do: no time, no rate
            return f"{head}{done}, all done before (resumed at {start:,})"
        rate = d["rate"] or ((n - start) / elapsed if elapsed > 0 and n > start
                             else None)
        parts = [f"{done} in {self.format_interval(elapsed)}"]
        if start:
            parts[0] += f" (resumed at {start:,})"
        if rate and rate >= 1:
            parts.append(f"{rate:,.0f} {unit}/s" if rate >= 100
                         else f"{rate:.3g} {unit}/s")
        elif rate:
            parts.append(f"{1 / rate:.3g} s/{unit}")
        if d.get("postfix"):
            parts.append(str(d["postfix"]))
        return head + ", ".join(parts)

    def close(self):
        if not self.disable and not getattr(self, "_reported", False):
            self._reported = True
            print(self.final_line(), flush=True)
        super().close()
        self._devnull.close()


def progress(iterable=None, **kwargs):
    """A tqdm progress bar that renders well wherever the code runs.

    Interactive Jupyter gets the widget bar, a terminal the usual bar. While the book is
    built, a bar redrawn in place would leave carriage returns and escape codes in the
    stored output (they break the LaTeX build), so the bar is printed once, in ASCII,
    when it closes.
    """
    bar = _FinalLineBar if in_book_build() else auto_tqdm
    return bar(iterable, **kwargs)
