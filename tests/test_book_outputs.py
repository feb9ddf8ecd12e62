"""What the executed chapters print and draw fits the printed page.

Each test reads the smoke-executed copy of a chapter in _build/smoke/chapters/ (made by
tests/test_book.py, or here, with the same cache: a chapter already executed for its
current source and package is not executed again). The checks hold for every chapter
the book lists, so chapters written later meet them too:

- no printed line is wider than the PDF's code box (88 characters at 8.5 pt);
- no absolute path of the build machine is printed (data and artifacts print relative);
- a progress bar leaves one final line with totals and rate, never an estimate of the
  time left, and no half-drawn bar;
- no figure's text prints below 7 pt at the size the PDF shows it.
"""

from __future__ import annotations

import base64
import json
import os
import re
import tempfile
from pathlib import Path

import pytest

from llm_from_scratch.book.figures import PRINT_WIDTH, SMALL, printed_sizes
from test_book import build_env  # noqa: F401 - the fixture: staging, environment
from tools import book

STAGING = book.BUILD / "smoke"
WIDTH = 88  # characters of FreeMono at 8.5 pt that the PDF's code box holds (92)
TQDM_BAR = re.compile(r"\d+%\|[^|]*\|")  # tqdm's drawn bar: " 50%|##5  |"
ETA = re.compile(r"\[\d+:\d\d(:\d\d)?<[\d:?]+")  # tqdm's "[elapsed<remaining"
RATE = re.compile(r"\[\d+:\d\d(:\d\d)?, [^]]*/s\]")  # no total: "[00:00, ? it/s]"
pytestmark = [pytest.mark.chapters, pytest.mark.timeout(1800)]


def executed(chapter: Path) -> dict:
    dest = STAGING / "chapters" / chapter.name
    book.execute(chapter, dest, "smoke", force=False)  # a no-op when it is current
    return json.loads(dest.read_text(encoding="utf-8"))


def printed_lines(nb: dict):
    """(cell index, line) of every text output a reader sees in the PDF."""
    for i, cell in enumerate(nb["cells"]):
        tags = cell.get("metadata", {}).get("tags", [])
        if "remove-output" in tags or "remove-cell" in tags:
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                text = out.get("text", "")
            elif "text/plain" in out.get("data", {}) and not any(
                    k.startswith("image/") or k == "application/pdf"
                    for k in out["data"]):
                text = out["data"]["text/plain"]
            else:
                continue
            text = "".join(text) if isinstance(text, list) else text
            for line in text.splitlines():
                yield i, line


def machine_paths() -> list[str]:
    """Absolute folders of this machine that a chapter might print."""
    from llm_from_scratch.config.runtime import artifacts_dir

    found = {str(book.ROOT), str(Path.home()), tempfile.gettempdir(),
             str(artifacts_dir("smoke").parent)}
    if os.environ.get("LLMFS_DATA"):
        found.add(str(Path(os.environ["LLMFS_DATA"]).resolve()))
    return sorted((p for p in found if len(p) > 1), key=len, reverse=True)


CHAPTERS = [pytest.param(p, id=p.stem) for p in book.chapter_paths()]


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_printed_lines_fit_the_code_box(chapter, build_env):
    wide = [(i, len(line), line[:60]) for i, line in printed_lines(executed(chapter))
            if len(line) > WIDTH]
    assert not wide, (f"{chapter.name}: printed lines wider than {WIDTH} characters "
                      f"wrap mid-token in the PDF (cell, length, start): {wide[:5]}")


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_no_absolute_build_paths_are_printed(chapter, build_env):
    paths = machine_paths()
    bad = [(i, line[:80]) for i, line in printed_lines(executed(chapter))
           if any(p in line for p in paths)]
    assert not bad, (f"{chapter.name}: prints paths of the build machine; print them "
                     f"relative to the data or artifacts folder: {bad[:5]}")


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_progress_bars_leave_one_final_line_without_eta(chapter, build_env):
    bad = [(i, line[:80]) for i, line in printed_lines(executed(chapter))
           if TQDM_BAR.search(line) or ETA.search(line) or RATE.search(line)
           or "\r" in line]
    assert not bad, (f"{chapter.name}: a drawn progress bar or an ETA in the outputs "
                     f"(use llm_from_scratch.config.runtime.progress): {bad[:5]}")


GLUE_ROLE = re.compile(r"\{glue(?::\w+)?\}`([\w.-]+)(?::[^`]*)?`")
TEXT_ROLE = re.compile(r"\{glue(:text|:any|)\}`([\w.-]+)(?::[^`]*)?`")


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_interpolated_value_is_glued_by_the_executed_chapter(chapter, build_env):
    """Prose that reads a result ({glue:text}`key`) finds it in the chapter's outputs:
    a key the code never glued would print as an error in the book."""
    nb = executed(chapter)
    glued = {out.get("metadata", {}).get("scrapbook", {}).get("name")
             for cell in nb["cells"] for out in cell.get("outputs", [])}
    used = {key for cell in nb["cells"] if cell["cell_type"] == "markdown"
            for key in GLUE_ROLE.findall("".join(cell["source"]))}
    assert not used - glued, f"interpolated but never glued: {sorted(used - glued)}"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_glued_words_are_pasted_as_markdown_not_as_python_strings(chapter, build_env):
    """{glue:text} pastes a value's repr: a string would print in quotes ('cpu').
    Words go through Markdown(...) and {glue:md}."""
    nb = executed(chapter)
    quoted = {}
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            name = out.get("metadata", {}).get("scrapbook", {}).get("name")
            plain = out.get("data", {}).get("application/papermill.record/text/plain")
            if name and isinstance(plain, str) and plain[:1] in "'\"":
                quoted[name] = plain
    pasted = {key for cell in nb["cells"] if cell["cell_type"] == "markdown"
              for kind, key in TEXT_ROLE.findall("".join(cell["source"]))}
    bad = {k: v[:40] for k, v in quoted.items() if k in pasted}
    assert not bad, f"strings pasted with their quotes (use Markdown, glue:md): {bad}"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_figure_text_prints_at_7pt_or_more(chapter, build_env):
    small = []
    for i, cell in enumerate(executed(chapter)["cells"]):
        for out in cell.get("outputs", []):
            pdf = out.get("data", {}).get("application/pdf")
            if pdf:
                sizes = printed_sizes(base64.b64decode(pdf), PRINT_WIDTH)
                if sizes and min(sizes) < SMALL - 0.05:  # 0.05 pt: rounding of scale
                    small.append((i, round(min(sizes), 2)))
    assert not small, (f"{chapter.name}: figure text below {SMALL} pt at print size "
                       f"(cell, smallest pt); a figure wider than {PRINT_WIDTH} in is "
                       f"shrunk to the text width: {small}")
