"""Every chapter executes with the smoke profile, and the smoke book builds to PDF/HTML.

The chapters are executed into _build/smoke/ exactly as `make book PROFILE=smoke` does;
a chapter whose code, package and profile are unchanged since its last successful
execution there is not executed again.
"""

from __future__ import annotations

import json
import os
import re
import shutil
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
    for needle in ["Contents", "Preface", "Who this book is for", "About this build",
                   "Data: from raw stories to tokens", "References",
                   "Eldan and Li, 2023"]:  # a citation, resolved
        assert needle in text, needle
    flat = " ".join(text.split())
    for chapter in book.chapter_paths():
        title = json.loads(chapter.read_text())["cells"][0]["source"][0]
        title = title.lstrip("# ").strip()  # an appendix's head: "Appendix A", title
        assert re.sub(r"^(Appendix [A-Z]): ", r"\1 ", title) in flat, chapter.name
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


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.fail("the HTML check needs headless Chromium: apt-get install chromium "
                "(tools/setup_env.sh tex installs it)")


@pytest.mark.pdf
def test_smoke_html_renders_equations_and_figures_offline(smoke_book, tmp_path):
    """Chapter 02 in headless Chromium: MathJax comes from the build itself (no
    network is used: every script is a local file), every equation is typeset (no raw
    TeX is left), every image loads, and a screenshot of the page is taken."""
    page = smoke_book / "_build" / "html" / "chapters" / "02_attention.html"
    assert (page.parent.parent / "_static" / "mathjax" / "tex-chtml.js").exists()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-extensions",
             "--allow-file-access-from-files", "--virtual-time-budget=30000"]
    probe = (ROOT / "tests" / "html_probe.html").as_uri() + "?page=" + page.as_uri()
    dom = subprocess.run([chromium(), *flags, "--dump-dom", probe], capture_output=True,
                         text=True, timeout=120).stdout
    found = re.search(r'<pre id="out">(.*?)</pre>', dom, re.S)
    assert found, f"the probe page did not run: {dom[-300:]!r}"
    result = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert result["mathjax"] == "done" and not result["remote"], result
    assert result["math"] >= 5 and result["rendered"] == result["math"], result["raw"]
    assert result["images"] >= 3 and not result["broken"], result["broken"]
    shot = tmp_path / "02_attention.png"
    subprocess.run([chromium(), *flags, "--window-size=1200,1800",
                    f"--screenshot={shot}", page.as_uri()], capture_output=True,
                   timeout=120)
    assert shot.exists() and shot.stat().st_size > 20_000  # a page, not a blank


def test_missing_data_folder_stops_the_build_in_one_line(tmp_path):
    env = dict(os.environ, LLMFS_DATA=str(tmp_path / "missing"))
    result = subprocess.run([sys.executable, "tools/book.py", "--profile", "smoke"],
                            cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "LLMFS_DATA=" in lines[0], result.stderr


def test_references_bib_parses_and_holds_every_cited_key():
    """A brace lost in a merge stops the whole PDF and HTML build late; catch it here,
    with every {cite} key of the chapters present."""
    import pybtex.database

    entries = pybtex.database.parse_file(str(ROOT / "book" / "references.bib")).entries
    cited = set()
    for nb in sorted((ROOT / "chapters").glob("*.ipynb")):
        for key in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", nb.read_text("utf-8")):
            cited.update(k.strip() for k in key.split(","))
    assert cited and not cited - set(entries), sorted(cited - set(entries))


def test_reference_titles_keep_their_capitals():
    """BibTeX styles lower-case a title's words unless braces protect them
    ("Tinystories", "english"): every title is wrapped whole in braces."""
    bib = (ROOT / "book" / "references.bib").read_text(encoding="utf-8")
    titles = re.findall(r"^\s*title\s*=\s*(.+?),?\s*$", bib, re.M)
    assert titles
    unbraced = [t for t in titles if not (t.startswith("{{") and t.endswith("}}"))]
    assert not unbraced, f"wrap these titles in a second pair of braces: {unbraced}"


def test_references_are_labelled_author_year_with_a_b_for_one_name_and_year():
    """The list uses the labels the text cites by (bibtex_reference_style = label):
    one citation style for both, and two works of one author-year apart."""
    from pybtex import database as pybtex

    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    try:
        import llmfs_bib
    finally:
        sys.path.remove(str(ROOT / "book" / "_ext"))
    db = pybtex.parse_file(str(ROOT / "book" / "references.bib"))
    labels = {e.key: e.label for e in llmfs_bib.AuthorYearStyle().format_bibliography(db)}
    assert labels["eldan2023tinystories"] == "Eldan and Li, 2023"
    assert labels["vaswani2017attention"] == "Vaswani et al., 2017"
    assert {labels["touvron2023llama"], labels["touvron2023llama2"]} == {
        "Touvron et al., 2023a", "Touvron et al., 2023b"}
    assert len(set(labels.values())) == len(labels), "two works share a label"
    order = [e.key for e in llmfs_bib.AuthorYearStyle().format_bibliography(db)]
    assert order.index("tiktoken") < order.index("ouyang2022training"), (
        "{OpenAI} sorts by its name, not after Z for its brace")


def test_pdf_chapters_are_numbered_by_file_name_and_appendices_lettered(tmp_path):
    """With chapter 07 missing, 08 is still "Chapter 08" in the PDF; appendix B is
    "Appendix B" (LaTeX would number them by their order: 7, and 9)."""
    (tmp_path / "chapters").mkdir()
    names = ["06_data_parallel", "08_instruction_tuning", "B_machinery"]
    for name in names:
        (tmp_path / "chapters" / f"{name}.ipynb").write_text(json.dumps(
            {"cells": [{"cell_type": "markdown", "metadata": {}, "source": "# T: t"}],
             "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    (tmp_path / "_toc.yml").write_text("root: book/preface\nchapters:\n" + "".join(
        f"  - file: chapters/{n}\n" for n in names))
    book.latex_numbering(tmp_path)
    book.latex_numbering(tmp_path)  # idempotent: a rebuild adds no second cell
    first = {n: json.loads((tmp_path / "chapters" / f"{n}.ipynb").read_text())["cells"]
             for n in names}
    assert all(len(cells) == 2 for cells in first.values())
    assert "\\setcounter{chapter}{5}" in first["06_data_parallel"][0]["source"]
    assert "\\setcounter{chapter}{7}" in first["08_instruction_tuning"][0]["source"]
    assert "\\appendix\\setcounter{chapter}{1}" in first["B_machinery"][0]["source"]


def test_pdf_appendix_headings_lose_the_numbers_latex_gives_them(tmp_path):
    """The HTML is unnumbered, so an appendix's headings carry "Appendix B: " and
    "B.1 "; the PDF numbers them itself, so the staged copy drops them (else the
    contents read "B.1 B.1 ...")."""
    (tmp_path / "chapters").mkdir()
    body = "# Appendix B: The machinery\n\nText B.1 stays.\n\n## B.1 Files\n\n### x\n"
    (tmp_path / "chapters" / "B_machinery.ipynb").write_text(json.dumps(
        {"cells": [{"cell_type": "markdown", "metadata": {}, "source": body}],
         "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    (tmp_path / "_toc.yml").write_text("root: book/preface\nchapters:\n"
                                       "  - file: chapters/B_machinery\n")
    book.latex_numbering(tmp_path)
    staged = tmp_path / "chapters" / "B_machinery.ipynb"
    cells = json.loads(staged.read_text())["cells"]
    assert cells[1]["source"] == ("# The machinery\n\nText B.1 stays.\n\n"
                                  "## Files\n\n### x\n")


def test_pdf_preface_gets_a_titled_chapter_and_real_headings():
    text = "# LLM from Scratch\n\nIntro.\n\n## Who this book is for\n\n```\n## code\n```\n"
    tex = book.latex_front_matter(text)
    assert "\\chapter*{Preface}" in tex and "\\addcontentsline{toc}{chapter}{Preface}" in tex
    assert "\\markboth{Preface}{Preface}" in tex  # the running heads
    assert "\\section*{Who this book is for}" in tex
    assert "## code" in tex  # a fenced block is left alone


def test_a_prose_edit_keeps_the_executed_outputs_and_a_code_edit_runs_again(tmp_path):
    """Only code (and its tags) decides whether a chapter runs again; a markdown edit
    is carried into the executed copy beside the outputs it had."""
    def notebook(prose: str, code: str) -> dict:
        return {"cells": [
            {"cell_type": "markdown", "id": "m1", "metadata": {}, "source": prose},
            {"cell_type": "code", "id": "p1", "metadata": {"tags": ["parameters"]},
             "source": 'profile = "auto"', "outputs": [], "execution_count": None},
            {"cell_type": "code", "id": "c1", "metadata": {}, "source": code,
             "outputs": [], "execution_count": None}],
            "metadata": {}, "nbformat": 4, "nbformat_minor": 5}

    chapter = tmp_path / "01_x.ipynb"
    chapter.write_text(json.dumps(notebook("# Old prose", "print(1)")))
    executed = notebook("# Old prose", "print(1)")
    injected = {"cell_type": "code", "id": "inj", "source": 'profile = "smoke"',
                "metadata": {"tags": ["injected-parameters", "remove-cell"]},
                "outputs": [], "execution_count": 1}
    executed["cells"].insert(2, injected)
    out = {"output_type": "stream", "name": "stdout", "text": "1\n"}
    executed["cells"][3].update(outputs=[out], execution_count=2)
    before = book.fingerprint(chapter, "smoke")

    chapter.write_text(json.dumps(notebook("# New prose, $x^2$", "print(1)")))
    assert book.fingerprint(chapter, "smoke") == before
    assert book.fingerprint(chapter, "cpu") != before
    fresh = book.refresh_prose(chapter, executed)
    assert [c["source"] for c in fresh["cells"]] == [
        "# New prose, $x^2$", 'profile = "auto"', 'profile = "smoke"', "print(1)"]
    assert fresh["cells"][3]["outputs"] == [out]

    chapter.write_text(json.dumps(notebook("# New prose, $x^2$", "print(2)")))
    assert book.fingerprint(chapter, "smoke") != before
    assert book.refresh_prose(chapter, executed) is None


def test_pdf_lead_ins_get_needspace_before_their_last_paragraph():
    """A lead-in moves to the next page with its code rather than end a page alone;
    blocks that a raw LaTeX cell would break (fences, math, lists) are left alone."""
    kept = book.keep_with_code("First.\n\nThe simple version is two lines:")
    head, raw, last = kept.split("\n\n")
    assert head == "First." and last == "The simple version is two lines:\n"
    assert raw == "```{raw} latex\n\\Needspace*{5\\baselineskip}\n```"
    kept = book.keep_with_code("Before.\n\n(sec-x)=\n## Heading\n\nThe lead-in:")
    assert kept.split("\n\n")[1].startswith("```{raw} latex")  # before the heading
    assert kept.endswith("(sec-x)=\n## Heading\n\nThe lead-in:\n")
    for untouched in ("Text.\n\n- an item", "$$\nx\n$$ (eq-x)", "```{note}\na\n\nb\n```",
                      "Text.\n\n## A heading"):
        assert book.keep_with_code(untouched) == untouched
