"""Every chapter executes with the smoke profile, and the smoke book builds to PDF/HTML.

The chapters are executed into _build/smoke/ exactly as `make book PROFILE=smoke` does;
a chapter whose source, package and profile are unchanged since its last successful
execution there is not executed again.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest

from tools import book

ROOT = Path(__file__).resolve().parent.parent
STAGING = book.BUILD / "smoke"
pytestmark = pytest.mark.timeout(1800)


@pytest.fixture(scope="module")
def build_env(data_dir):
    with mock.patch.dict(os.environ):
        book.prepare_environment()
        book.stage(STAGING)
        yield


@pytest.mark.chapters
@pytest.mark.parametrize("chapter", book.chapter_paths(), ids=lambda p: p.stem)
def test_chapter_executes_with_smoke_profile(chapter, build_env):
    book.execute(chapter, STAGING / "chapters" / chapter.name, "smoke", force=False)


@pytest.fixture(scope="module")
def smoke_book(build_env):
    assert book.main(["--profile", "smoke", "--pdf", "--html"]) == 0
    return STAGING


@pytest.mark.pdf
def test_smoke_pdf_has_every_part_of_the_book(smoke_book):
    text = subprocess.run(["pdftotext", str(smoke_book / "book.pdf"), "-"],
                          capture_output=True, text=True, check=True).stdout
    for needle in ["CONTENTS", "Who this book is for", "About this build",
                   "Data: from raw stories to tokens", "References",
                   "Eldan and Li, 2023"]:  # a citation, resolved
        assert needle in text, needle
    for chapter in book.chapter_paths():
        title = json.loads(chapter.read_text())["cells"][0]["source"][0]
        assert title.lstrip("# ").strip() in text.replace("\n", " "), chapter.name
    assert "\x1b" not in text and not re.search(r"\[\d+(;\d+)*m", text)
    assert "??" not in text, "an unresolved reference or citation"


@pytest.mark.pdf
def test_smoke_pdf_has_figures_equations_and_no_overfull_lines(smoke_book):
    latex = smoke_book / "_build" / "latex"
    tex = (latex / "book.tex").read_text()
    assert tex.count("\\sphinxincludegraphics") >= 2  # the two figures of chapter 01
    assert re.search(r"\\begin\{equation\}", tex)
    log = (latex / "book.log").read_text(errors="replace")
    # A line a few points too wide stays inside the margin; 10 pt is visibly off.
    wide = [float(w) for w in re.findall(r"Overfull \\hbox \(([\d.]+)pt too wide", log)]
    assert max(wide, default=0) < 10, f"lines run off the page: {sorted(wide)[-5:]}"


@pytest.mark.pdf
def test_smoke_front_matter_records_the_build(smoke_book):
    preface = (smoke_book / "book" / "preface.md").read_text()
    info = preface.split("## About this build", 1)[1]
    assert "`smoke`" in info and "torch" in info and "CPU" in info
    for chapter in book.chapter_paths():
        assert re.search(rf"\| {re.escape(chapter.name)} \| \d+\.\d \|", info)


@pytest.mark.pdf
def test_smoke_html_builds(smoke_book):
    assert (smoke_book / "_build" / "html" / "index.html").exists()


def test_missing_data_folder_stops_the_build_in_one_line(tmp_path):
    env = dict(os.environ, LLMFS_DATA=str(tmp_path / "missing"))
    result = subprocess.run([sys.executable, "tools/book.py", "--profile", "smoke"],
                            cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "LLMFS_DATA=" in lines[0], result.stderr
