"""Claims (llm_from_scratch.book.claims): a ✘ fails `make test`, and marks the book.

A claim about an outcome the machine decides prints ✔ or ✘ with what it measured.
In strict mode (the tests, CI) a ✘ raises; in the book build it is recorded: the
PDF shows the ✘ line beside the check, *About this build* lists it, and the build
exits non-zero after finishing the book.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest

from llm_from_scratch.book import claims
from llm_from_scratch.book.claims import (BUSY, FAILED, HELD, ClaimFailed, claim,
                                          load_note)
from tools import book

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("mode", ["warn", "record"])
def test_a_failed_claim_prints_its_measurement_and_goes_on_outside_strict_mode(
        mode, capsys):
    with mock.patch.dict(os.environ, {"LLMFS_CLAIMS": mode}):
        assert claim(3 < 2, "three is below two", three=3, ratio=2 / 3) is None
    out = capsys.readouterr().out
    assert out == f"{FAILED} three is below two (three = 3, ratio = 0.6667)\n"


def test_a_failed_claim_raises_in_strict_mode_and_under_ci(capsys):
    for env in ({"LLMFS_CLAIMS": "strict"}, {"LLMFS_CLAIMS": "", "CI": "true"}):
        with mock.patch.dict(os.environ, env), pytest.raises(ClaimFailed,
                                                              match="below two"):
            claim(False, "three is below two")
    with mock.patch.dict(os.environ, {"LLMFS_CLAIMS": "strict"}):
        claim(True, "two is below three", nan=float("nan"))
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"{HELD} two is below three (nan = nan)")


def test_an_unknown_claims_mode_is_refused_naming_the_modes():
    with mock.patch.dict(os.environ, {"LLMFS_CLAIMS": "lenient"}), \
            pytest.raises(ValueError, match="strict, record, warn"):
        claim(True, "anything")


def test_load_note_says_when_the_load_exceeds_the_cores():
    with mock.patch.object(claims.os, "getloadavg", return_value=(1.5, 1.0, 1.0)):
        assert load_note(2) == "load average 1.50 on 2 cores"
    with mock.patch.object(claims.os, "getloadavg", return_value=(5.25, 4.0, 3.0)):
        note = load_note(2)
    assert note.startswith("load average 5.25 on 2 cores") and BUSY in note


def test_a_long_claim_is_wrapped_to_the_code_box_and_read_back_whole(capsys):
    with mock.patch.dict(os.environ, {"LLMFS_CLAIMS": "warn"}):
        claim(False, "a claim whose words run well past the width of the PDF's code "
              "box, so that it must wrap", measured_value=0.123456, other=12)
    out = capsys.readouterr().out
    assert len(out.splitlines()) > 1 and max(map(len, out.splitlines())) <= 88
    nb = {"cells": [{"cell_type": "code", "outputs": [
        {"output_type": "stream", "name": "stdout", "text": out + "after\n"}]}]}
    assert book.claims_in(nb)[1] == [
        "a claim whose words run well past the width of the PDF's code box, so that "
        "it must wrap (measured_value = 0.1235, other = 12)"]


def test_the_build_finds_held_and_failed_claims_and_busy_timings_in_the_outputs():
    nb = {"cells": [
        {"cell_type": "code", "outputs": [{"output_type": "stream", "name": "stdout",
         "text": [f"{HELD} a held\n", f"{FAILED} b failed (x = 1)\n"]}]},
        {"cell_type": "code", "outputs": [{"output_type": "stream", "name": "stdout",
         "text": f"table at load average 9.00 on 2 cores; {BUSY} other work\n"}]},
        {"cell_type": "markdown", "source": f"{FAILED} only prose, not an output"}]}
    held, failed, busy = book.claims_in(nb)
    assert (held, failed, len(busy)) == (1, ["b failed (x = 1)"], 1)
    report = book.claims_report({"01_x.ipynb": (held, failed, busy)})
    assert "**1 of 2 claims did not hold on this machine.**" in report
    assert "- 01_x: b failed (x = 1)" in report
    assert "- 01_x: 1 timing note, at load average 9.00" in report
    assert "All 3 claims" in book.claims_report({"01_x.ipynb": (3, [], [])})


def tiny_book(folder: Path) -> Path:
    """A book of one chapter that checks a claim that holds and one that does not."""
    for name in ("_config.yml",):
        (folder / name).write_text((ROOT / name).read_text())
    (folder / "_toc.yml").write_text("format: jb-book\nroot: book/preface\nchapters:\n"
                                     "  - file: chapters/01_claims\n")
    subprocess.run(["cp", "-r", str(ROOT / "book"), str(folder / "book")], check=True)
    (folder / "chapters").mkdir()
    cells = [("markdown", "# Claims\n\nA chapter with two claims."),
             ("code", 'profile = "auto"'),
             ("code", "from llm_from_scratch.book.claims import claim\n"
                      'claim(2 > 1, "two exceeds one", two=2)\n'
                      'claim(1 > 2, "one exceeds two", one=1, two=2)'),
             ("markdown", "The prose reads the outcome.")]
    nb = {"cells": [{"cell_type": kind, "id": f"c{i}", "metadata": (
              {"tags": ["parameters"]} if src.startswith("profile") else {}),
              "source": src, **({"outputs": [], "execution_count": None}
                                if kind == "code" else {})}
                    for i, (kind, src) in enumerate(cells)],
          "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                      "name": "python3"}},
          "nbformat": 4, "nbformat_minor": 5}
    (folder / "chapters" / "01_claims.ipynb").write_text(json.dumps(nb))
    return folder


def build(folder: Path, mode: str | None, *flags: str):
    env = {k: v for k, v in os.environ.items() if k not in ("LLMFS_CLAIMS", "CI")}
    env.update({"LLMFS_CLAIMS": mode} if mode else {})
    return subprocess.run([sys.executable, "tools/book.py", "--profile", "smoke",
                           "--source", str(folder), *flags], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)


@pytest.mark.pdf
def test_a_failed_claim_marks_the_pdf_lists_it_and_fails_the_book_build(tmp_path):
    result = build(tiny_book(tmp_path), None, "--pdf")
    assert result.returncode == 1, result.stderr[-2000:]
    assert "book: claim did not hold: 01_claims.ipynb: one exceeds two" in result.stderr
    pdf = tmp_path / "_build" / "smoke" / "book.pdf"
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout
    assert f"{FAILED} one exceeds two (one = 1, two = 2)" in text  # beside the check
    assert "claim held: two exceeds one (two = 2)" in text  # ✔ reads back as ✓
    assert "False" not in text
    about = text.split("About this build")[-1]
    assert "1 of 2 claims did not hold on this machine." in about
    assert "01_claims: one exceeds two (one = 1, two = 2)" in " ".join(about.split())
    log = (tmp_path / "_build" / "smoke" / "_build" / "latex" / "book.log").read_text(
        errors="replace")
    assert "Missing character" not in log  # ✔ and ✘ have a glyph in the PDF


def test_a_failed_claim_stops_the_build_in_strict_mode(tmp_path):
    result = build(tiny_book(tmp_path), "strict")
    assert result.returncode == 2
    assert "01_claims.ipynb failed" in result.stderr and "ClaimFailed" in result.stderr


def test_the_sweep_reads_claims_back_with_their_measured_values(capsys, monkeypatch):
    """tools/claims_sweep.py parses what claim() prints, wrapped lines included."""
    sys.path.insert(0, str(ROOT / "tools"))
    import claims_sweep

    from llm_from_scratch.book.claims import claim

    monkeypatch.setenv("LLMFS_CLAIMS", "record")
    text = "two steps add more than the estimate (the activations)"
    claim(True, f"{text}, {text}", added_MB=97.7, estimate_MB=1.5)
    claim(False, "a rate exceeds one half", rate=0.3)
    printed = capsys.readouterr().out
    nb = {"cells": [{"cell_type": "code", "outputs": [
        {"output_type": "stream", "name": "stdout", "text": printed}]}]}
    first, second = claims_sweep.claim_lines(nb)
    assert first["held"] and first["measured"] == {"added_MB": 97.7, "estimate_MB": 1.5}
    assert first["text"].endswith("(the activations)")
    assert not second["held"] and second["measured"] == {"rate": 0.3}
    rows = claims_sweep.summarise([{"chapter": "X", "claims": [first, second]},
                                   {"chapter": "X", "claims": [first, {**second,
                                                                       "held": True}]}])
    assert [(r["held"], r["runs"]) for r in rows] == [(2, 2), (1, 2)]
    assert "✘ X" in claims_sweep.report(rows)
