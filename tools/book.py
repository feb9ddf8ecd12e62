"""Build the book: execute every chapter with papermill, then Jupyter Book → PDF/HTML.

    python tools/book.py --profile cpu --pdf --html

Chapter sources stay output-free. Executed copies go to ``_build/<profile>/`` beside
copies of ``_config.yml``, ``_toc.yml`` and ``book/``; Jupyter Book builds there. A
chapter is executed again only when its code, the package or the profile changed
(``--force`` re-executes everything); a prose edit is copied into the executed copy.
In the staging copy of the preface, the chapter list is written from ``_toc.yml``
(what the book holds, never more), and the last section, *About this build*, from
what this run measured.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT  # the book's sources (_config.yml, _toc.yml, book/, chapters/); --source
CHAPTERS = SOURCE / "chapters"
BUILD = SOURCE / "_build"
sys.path.insert(0, str(ROOT))  # the package and tools of this checkout, not another

from llm_from_scratch.book.claims import BUSY, read_claims  # noqa: E402
from llm_from_scratch.book.figures import Entry, book_outline  # noqa: E402
from llm_from_scratch.config.profiles import (PROFILES,  # noqa: E402
                                              UnknownProfileError,
                                              resolve_profile_name)
from tools import export  # noqa: E402

ANSI = re.compile(r"\x1b\[[0-9;]*m")
KEY_PACKAGES = ["torch", "numpy", "tokenizers", "datasets", "transformers", "tiktoken",
                "triton", "safetensors", "matplotlib", "papermill", "jupyter-book"]


class BuildError(Exception):
    """A problem the user must fix; printed as one line."""


def shown(path: Path) -> Path:
    """A path as printed: relative to the checkout when it lies inside it."""
    try:
        return path.relative_to(ROOT)
    except ValueError:
        return path


def use_source(folder: Path) -> None:
    """Build the book whose sources are in ``folder`` (a checkout by default)."""
    global SOURCE, CHAPTERS, BUILD
    SOURCE = folder.resolve()
    CHAPTERS, BUILD = SOURCE / "chapters", SOURCE / "_build"
    for name in ("_config.yml", "_toc.yml", "book/preface.md"):
        if not (SOURCE / name).exists():
            raise BuildError(f"--source {folder}: no {name} there")


def chapter_paths(selected: list[str] | None = None) -> list[Path]:
    paths = export.chapter_files(CHAPTERS)  # numbered chapters, then appendices
    if selected:
        paths = [p for p in paths if any(p.name.startswith(s) for s in selected)]
        if not paths:
            raise BuildError(f"no chapter matches {selected}; see {CHAPTERS}")
    return paths


def fingerprint(chapter: Path, profile: str) -> str:
    """Changes when the chapter's code, the package or the profile changes.

    Prose is left out: a markdown edit is refreshed into the executed copy
    (``refresh_prose``) without running the chapter again.
    """
    h = hashlib.sha256(profile.encode())
    for cell in json.loads(chapter.read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] == "code":
            tags = cell.get("metadata", {}).get("tags", [])
            h.update(json.dumps([_text(cell["source"]), tags]).encode())
    for path in sorted((ROOT / "llm_from_scratch").rglob("*.py")):
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _text(source: str | list[str]) -> str:
    return source if isinstance(source, str) else "".join(source)


def refresh_prose(chapter: Path, executed: dict) -> dict | None:
    """The source chapter with the executed copy's outputs, or None when a code cell
    cannot be matched by its id (then the chapter is executed again)."""
    source = json.loads(chapter.read_text(encoding="utf-8"))
    done = {c.get("id"): c for c in executed["cells"] if c["cell_type"] == "code"}
    cells = []
    for cell in source["cells"]:
        if cell["cell_type"] == "code":
            run = done.get(cell.get("id"))
            if run is None or _text(run["source"]) != _text(cell["source"]):
                return None
            cell = {**cell, "outputs": run.get("outputs", []),
                    "execution_count": run.get("execution_count"),
                    "metadata": {**cell.get("metadata", {}),
                                 "papermill": run["metadata"].get("papermill", {})}}
        cells.append(cell)
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            cells += [c for c in executed["cells"] if "injected-parameters"
                      in c.get("metadata", {}).get("tags", [])]
    return {**executed, "cells": cells}


def find_ansi(nb: dict) -> list[int]:
    """Indices of code cells whose outputs contain terminal escape codes."""
    bad = []
    for i, cell in enumerate(nb["cells"]):
        for out in cell.get("outputs", []):
            blob = json.dumps(out.get("text", "")) + json.dumps(out.get("data", {}))
            if "\\u001b" in blob:
                bad.append(i)
                break
    return bad


def claims_in(nb: dict) -> tuple[int, list[str], list[str]]:
    """(claims that held, lines of claims that did not, timing notes taken on a busy
    machine) in an executed notebook's printed outputs (``llm_from_scratch.book.claims``)."""
    held, failed, busy = 0, [], []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            if out.get("output_type") != "stream":
                continue
            text = _text(out.get("text", ""))
            for claim in read_claims(text):
                held += claim["held"]
                if not claim["held"]:
                    failed.append(claim["line"])
            busy += [line.strip() for line in text.splitlines() if BUSY in line]
    return held, failed, busy


def execute(chapter: Path, dest: Path, profile: str, force: bool) -> float:
    """Execute one chapter into ``dest``; returns its run time in seconds."""
    import papermill

    stamp = fingerprint(chapter, profile)
    if dest.exists() and not force:
        done = json.loads(dest.read_text(encoding="utf-8"))
        meta = done["metadata"].get("llmfs", {})
        if meta.get("fingerprint") == stamp:
            nb = refresh_prose(chapter, done)
            if nb is not None:
                dest.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n",
                                encoding="utf-8")
                print(f"  {chapter.name}: code unchanged, executed "
                      f"{meta['seconds']:.1f} s earlier (prose refreshed)")
                return meta["seconds"]
    print(f"  {chapter.name}: executing with profile {profile} ...", flush=True)
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(chapter), str(dest), parameters={"profile": profile},
            cwd=str(CHAPTERS), kernel_name="python3", progress_bar=False,
        )
    except papermill.PapermillExecutionError as exc:
        raise BuildError(
            f"{chapter.name} failed in cell {exc.exec_count} with {exc.ename}: "
            f"{exc.evalue} (the executed copy with the traceback: {dest})"
        ) from None
    seconds = time.perf_counter() - start
    nb = json.loads(dest.read_text(encoding="utf-8"))
    for cell in nb["cells"]:  # the reader sees `profile = "auto"`, not the injection
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
    nb["metadata"]["llmfs"] = {"profile": profile, "seconds": seconds,
                              "fingerprint": stamp, "load": _load_now()}
    bad = find_ansi(nb)
    if bad:
        raise BuildError(f"{chapter.name}: terminal escape codes in the outputs of "
                         f"cells {bad}; they break the PDF (use llm_from_scratch.config.runtime"
                         ".progress for progress bars)")
    dest.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"  {chapter.name}: {seconds:.1f} s", flush=True)
    return seconds


def _load_now() -> float | None:
    """The 1-minute load average as a chapter ends (None where it is not known)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def hardware() -> tuple[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cpu = f"{cpu}, {os.cpu_count()} logical cores"
    try:
        import torch
        gpu = (f"{torch.cuda.get_device_name(0)} (x{torch.cuda.device_count()})"
               if torch.cuda.is_available() else "none")
    except Exception:  # noqa: BLE001 - reporting only
        gpu = "unknown"
    return cpu, gpu


def cpu_features() -> str:
    """What decides CPU speed in this book: native bf16 (AVX-512 BF16, AMX) or not."""
    try:
        flags = set()
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        flags = set()
    names = {"avx2": "AVX2", "avx512f": "AVX-512", "avx512_bf16": "AVX-512 BF16",
             "amx_tile": "AMX", "amx_bf16": "AMX BF16"}
    have = [label for flag, label in names.items() if flag in flags]
    lacks = [label for flag, label in names.items() if flag not in flags]
    try:
        import torch
        used = f"; PyTorch uses {torch.backends.cpu.get_cpu_capability()}"
    except Exception:  # noqa: BLE001 - reporting only
        used = ""
    if not flags:
        return "not known (no /proc/cpuinfo)" + used
    return (", ".join(have) or "none of AVX2, AVX-512, AMX") + (
        f" (lacks {', '.join(lacks)})" if lacks else "") + used


def memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return "not known"


def commit() -> str:
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=20).stdout.strip()
    try:
        head = git("rev-parse", "--short=12", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "not a git checkout"
    return f"`{head}`" + (" with uncommitted changes" if dirty else "") if head else (
        "not a git checkout")


def load_average() -> str:
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg()) + " (1, 5, 15 min)"
    except OSError:
        return "not known"


def data_used(profile: str) -> list[tuple[str, str]]:
    """Rows for the data the chapters trained on: source, stories read, text bytes and
    tokens per split, read from the token shards' manifest (chapter 01 writes it)."""
    from llm_from_scratch.data.prepare import read_limits
    from llm_from_scratch.config.runtime import artifacts_dir

    raw = os.environ.get("LLMFS_DATA")
    source = (f"TinyStories, local folder `{Path(raw).name}`" if raw
              else "TinyStories from the Hugging Face hub (roneneldan/TinyStories)")
    manifest = artifacts_dir(profile) / "tokens" / "manifest.json"
    if not manifest.exists():
        return [("data", f"{source}; no token shards were made by this build")]
    done = json.loads(manifest.read_text())
    files = [f for f in done["key"].get("data", []) if isinstance(f, list)]
    limits = read_limits(profile)
    text_bytes = shard_text_bytes(profile, manifest.parent, done["shards"])
    rows = [("data", source)]  # a file a row: long names cannot break in a table cell
    rows += [("data file", f"`{name}`, {size / 1e6:.1f} MB") for name, size in files]
    for split in ("train", "valid"):  # what the shards hold: after cleaning, dedup
        size, stories = text_bytes.get(split, (None, None))
        held = (f"{stories:,} stories" if stories else "stories")
        rows.append((f"{split} split", f"{held} (of at most {limits[split]:,} read, "
                     "cleaned and deduplicated)"
                     + (f", {size / 1e6:.2f} MB of text" if size else "")
                     + f", {done['tokens'][split]:,} tokens"))
    return rows


def shard_text_bytes(profile: str, folder: Path, shards: dict) -> dict[str, tuple]:
    """(UTF-8 bytes, stories) of the text the token shards hold, per split: each
    token's byte length summed, and the <|endoftext|> that ends each story counted."""
    try:
        import numpy as np
        from tokenizers import Tokenizer

        from llm_from_scratch.training.metrics import token_byte_lengths
        from llm_from_scratch.config.runtime import artifacts_dir

        tok = Tokenizer.from_file(str(artifacts_dir(profile) / "tokenizer.json"))
        lengths = token_byte_lengths(tok).numpy()
        eot = tok.token_to_id("<|endoftext|>")
        out = {}
        for split, names in shards.items():
            counts = sum(np.bincount(np.fromfile(folder / n, dtype=np.uint16),
                                     minlength=len(lengths)) for n in names)
            out[split] = (int((counts[:len(lengths)] * lengths).sum()),
                          int(counts[eot]) if eot is not None else None)
        return out
    except Exception:  # noqa: BLE001 - reporting only: the row says less
        return {}


def escape_md(text: str) -> str:
    """Text printed by a chapter, safe to set as Markdown (no emphasis, no roles)."""
    return re.sub(r"([\\`*_{}\[\]<>#|$])", r"\\\1", text)


def failed_claims(checks: dict[str, tuple[int, list[str], list[str]]]
                  ) -> list[tuple[str, str]]:
    """(chapter, claim) of every claim that did not hold, in chapter order."""
    return [(name, line) for name, (_, bad, _) in checks.items() for line in bad]


def claims_report(checks: dict[str, tuple[int, list[str], list[str]]]) -> str:
    """*About this build*'s account of the claims: how many held, each one that did
    not (by chapter), and the chapters whose timings ran on a busy machine."""
    failed = failed_claims(checks)
    total = sum(held for held, _, _ in checks.values()) + len(failed)
    if not failed:
        text = (f"All {total} claims that the chapters check about outcomes this "
                "machine decides (a training result, a count, a timing) held here.")
    else:
        text = (f"**{len(failed)} of {total} claims did not hold on this machine.** "
                "Each is marked ✘ beside its check in the chapter; the prose around "
                "it was written for the outcome it states. This build is not a clean "
                "one, and `make book` exited with an error after building it:\n\n")
        text += "\n".join(f"- {name.removesuffix('.ipynb')}: {escape_md(line)}"
                          for name, line in failed)
    busy = [f"- {busy_summary(name, notes)}" for name, (_, _, notes) in checks.items()
            if notes]
    if busy:
        text += ("\n\nTimings measured while the load average exceeded the cores "
                 "(their numbers are slowed by other work):\n\n" + "\n".join(busy))
    return text + "\n"


def busy_summary(name: str, notes: list[str]) -> str:
    """A chapter's busy-machine timing notes in one line: how many, at what load."""
    loads = [float(x) for note in notes
             for x in re.findall(r"load average ([\d.]+)", note)]
    at = (f", at load average {min(loads):.2f}" + (
        f" to {max(loads):.2f}" if max(loads) > min(loads) else "")) if loads else ""
    count = f"{len(notes)} timing note" + ("s" if len(notes) != 1 else "")
    return f"{name.removesuffix('.ipynb')}: {count}{at}"


def build_info(profile: str, timings: dict[str, float], load_at_start: str,
               checks: dict[str, tuple[int, list[str], list[str]]] | None = None,
               loads: dict[str, float | None] | None = None) -> str:
    cpu, gpu = hardware()
    loads = loads or {}
    shown_load = {n: "" if loads.get(n) is None else f"{loads[n]:.2f}" for n in timings}
    rows = "\n".join(f"| {name} | {sec:.1f} | {shown_load[name]} |"
                     for name, sec in timings.items())
    pkgs = "\n".join(f"| {p} | {version(p)} |" for p in KEY_PACKAGES)
    machine = "\n".join(f"| {k} | {v} |" for k, v in [
        ("date (UTC)", f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M}"),
        ("profile", f"`{profile}`: {PROFILES[profile].summary}"),
        ("commit", commit()),
        ("CPU", cpu), ("CPU features", cpu_features()), ("RAM", memory()),
        ("GPU", gpu),
        ("Python", f"{platform.python_version()} on {platform.system()} "
                   f"{platform.machine()}"),
        ("load average", f"{load_at_start} when the build started; "
                         f"{load_average().split(' (')[0]} at its end"),
        *data_used(profile)])
    keep = "```{raw} latex\n\\needspace{12\\baselineskip}\n```\n\n"
    return f"""
## About this build

Every output in this book was produced by running the chapters, top to bottom, when
this copy was built. This section records how. Times depend on the machine's load,
given here too: other work on the same cores slows every chapter. The long runs
(pretraining, the scaling sweep, instruction tuning and DPO) are cached in the
artifacts folder under a digest of everything that decides their result; a chapter
that finds its run finished reuses it and says so in its output, with the minutes
the run took when it trained. The times below are what this build spent.

{keep}The machine, the code and the data:

| what | this build |
|---|---|
{machine}

{keep}Execution time of each chapter, as measured by this build, with the load average
(1 minute) as it ended, on {os.cpu_count()} cores: a load above the cores means other
work slowed the chapter.

| chapter | seconds | load |
|---|---:|---:|
{rows}
| **total** | **{sum(timings.values()):.1f}** | |

{keep}Claims checked by this build:

{claims_report(checks or {{}})}
{keep}Versions of the key packages:

| package | version |
|---|---|
{pkgs}
"""


def version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


CHAPTER_LIST = re.compile(r"^```\{chapter-list\}\n(?P<body>.*?)^```\n", re.S | re.M)


def chapter_list(preface: str, outline: list[Entry]) -> str:
    """The preface with its ``{chapter-list}`` block replaced by the chapters and
    appendices of ``outline`` (from ``_toc.yml``), each with the block's description
    for its number; descriptions of chapters the outline lacks are left out."""
    found = CHAPTER_LIST.search(preface)
    if found is None:
        raise BuildError("book/preface.md has no ```{chapter-list} block")
    described: dict[str, str] = {}
    key = None
    for line in found["body"].splitlines():
        item = re.match(r"(\d\d|[A-Z]):\s*(.*)", line)
        if item:
            key, text = item.groups()
            described[key] = text
        elif key and line.startswith(" ") and line.strip():
            described[key] += " " + line.strip()
        elif not line.strip():
            key = None

    def item(entry: Entry, head: str = "") -> str:
        text = described.get(entry.number)
        return f"**{head}{entry.label}.**" + (f" {text}" if text else "")

    chapters = [e for e in outline if not e.is_appendix]
    appendices = [e for e in outline if e.is_appendix]
    lines = [f"{int(e.number)}. {item(e)}" for e in chapters]
    if appendices:
        lines += ["", "The appendices:", ""]
        lines += [f"- {item(e, f'{e.number}. ')}" for e in appendices]
    return preface[:found.start()] + "\n".join(lines) + "\n" + preface[found.end():]


SUMMARY = re.compile(r"^```\{build-summary\}\n.*?^```\n", re.S | re.M)


def build_summary(preface: str, profile: str, timings: dict[str, float]) -> str:
    """The preface with its ``{build-summary}`` block replaced by this build's times."""
    if not timings:
        return SUMMARY.sub("", preface)
    name, longest = max(timings.items(), key=lambda kv: kv[1])
    parts = f"{len(timings)} chapter" + ("s" if len(timings) != 1 else "")
    text = (f"This copy was built with the `{profile}` profile: running its "
            f"{parts} took {sum(timings.values()) / 60:.1f} minutes, "
            f"the longest, {name.removesuffix('.ipynb')}, {longest / 60:.1f} "
            f"minutes. Other profiles and machines take other times; the table at "
            f"the end of this preface has each chapter's.\n")
    return SUMMARY.sub(lambda _: text, preface)


def latex_front_matter(preface: str) -> str:
    """The preface as the PDF shows it: a "Preface" chapter in the contents, the
    bookmarks and the running heads, and its sections real (unnumbered) headings.
    Jupyter Book would print the root page's headings as bold lines instead."""
    def raw(tex: str) -> str:
        return f"```{{raw}} latex\n{tex}\n```\n"

    out, fence = [], False
    for line in preface.splitlines(keepends=True):
        if line.startswith("```"):
            fence = not fence if line.strip() == "```" or not fence else fence
        head = re.match(r"^(#{1,3}) (.+?)\s*$", line)
        if head and not fence:
            level, title = len(head.group(1)), head.group(2)
            if level == 1:  # the book's title: the page stays, "Preface" opens it
                out += [line, "\n", raw(
                    "\\chapter*{Preface}\\phantomsection"
                    "\\addcontentsline{toc}{chapter}{Preface}"
                    "\\markboth{Preface}{Preface}")]
            else:
                cmd = "section" if level == 2 else "subsection"
                tex = title.replace("*", "").replace("`", "")
                out.append(raw(f"\\{cmd}*{{{tex}}}\\phantomsection"
                               f"\\addcontentsline{{toc}}{{{cmd}}}{{{tex}}}"))
            continue
        out.append(line)
    return "".join(out)


NUMBERING = "llmfs-numbering"


SHOWN_CODE_HIDDEN_BY = {"remove-input", "remove-cell", "hide-input", "hide-cell"}


def keep_with_code(text: str) -> str:
    """A markdown cell that leads into a code cell, with ``\\Needspace*`` before its
    last paragraph: if the page cannot hold that paragraph and the code's first
    lines, both go to the next one (``\\needspace`` would also invite a break there
    when they fit, leaving half-empty pages). A penalty before the code was not
    enough: the cell's box is a list, and the page broke inside its opening. Text
    inside a fence, math block, list or table is left alone."""
    head, _, last = text.rstrip().rpartition("\n\n")
    if (last.lstrip().startswith(("#", "```", "$$", "|", "-", "*", ">", ":"))
            or re.match(r"\s*\d+\.", last) or head.count("```") % 2
            or head.count("$$") % 2 or "```" in last or "$$" in last):
        return text
    lines = len(last) // 90 + 1 + 4  # the paragraph, at ~90 characters a line, and code
    blocks = head.split("\n\n") if head else []
    while blocks and re.match(r"\s*(#|\(\S+\)=)", blocks[-1]):  # a heading goes too
        last = blocks.pop() + "\n\n" + last
        lines += 3
    head = "\n\n".join(blocks)
    raw = f"```{{raw}} latex\n\\Needspace*{{{lines}\\baselineskip}}\n```"
    return f"{head}\n\n{raw}\n\n{last}\n" if head else f"{raw}\n\n{last}\n"


def latex_keep_leadins(staging: Path) -> None:
    """Each staged chapter's lead-ins kept on the page of the code they introduce."""
    for path in sorted((staging / "chapters").glob("*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        cells = nb["cells"]
        for cell, after in zip(cells, cells[1:]):
            tags = set(after.get("metadata", {}).get("tags", []))
            if (cell["cell_type"] == "markdown" and after["cell_type"] == "code"
                    and not tags & SHOWN_CODE_HIDDEN_BY):
                cell["source"] = keep_with_code(_text(cell["source"]))
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n",
                        encoding="utf-8")


APPENDIX_NUMBER = re.compile(r"^(#+ )(?:Appendix [A-Z]: |[A-Z]\.\d+ )", re.M)


def latex_numbering(staging: Path) -> None:
    """Number the PDF's chapters by their file names, not by their order: chapter
    08 stays "Chapter 08" while 07 is missing, and appendices are lettered from
    their own letter ("Appendix B"). A cell of raw LaTeX, which the HTML ignores,
    goes at the top of each staged notebook. An appendix's headings lose the numbers
    they carry for the HTML ("# Appendix A: ...", "## A.1 ..."), which LaTeX gives."""
    started_appendix = False
    for entry in book_outline(staging / "_toc.yml"):
        path = staging / f"{entry.file}.ipynb"
        if not path.exists():
            continue
        nb = json.loads(path.read_text(encoding="utf-8"))
        nb["cells"] = [c for c in nb["cells"] if c.get("id") != NUMBERING]
        if entry.is_appendix:  # LaTeX numbers "A", "A.1": the titles' own go
            for cell in nb["cells"]:
                if cell["cell_type"] == "markdown":
                    cell["source"] = APPENDIX_NUMBER.sub(r"\1", _text(cell["source"]))
            tex = "" if started_appendix else "\\appendix"
            tex += f"\\setcounter{{chapter}}{{{ord(entry.number) - ord('A')}}}"
            started_appendix = True
        else:
            tex = f"\\setcounter{{chapter}}{{{int(entry.number) - 1}}}"
        nb["cells"].insert(0, {"cell_type": "markdown", "id": NUMBERING, "metadata": {},
                               "source": f"```{{raw}} latex\n{tex}\n```"})
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n",
                        encoding="utf-8")


def stage(staging: Path) -> None:
    staging.mkdir(parents=True, exist_ok=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(SOURCE / name, staging / name)
    shutil.copytree(SOURCE / "book", staging / "book", dirs_exist_ok=True)
    (staging / "chapters").mkdir(exist_ok=True)
    wanted = {p.name for p in chapter_paths()}
    for old in (staging / "chapters").glob("*.ipynb"):
        if old.name not in wanted:
            old.unlink()


def jupyter_book(staging: Path, builder: str) -> None:
    exe = Path(sys.executable).with_name("jupyter-book")
    # --all: Sphinx's saved environment can hold a stale bibliography (a key added
    # to references.bib is then a KeyError in sphinxcontrib-bibtex); pages are few
    cmd = [str(exe), "build", str(staging), "--builder", builder, "--keep-going",
           "--all"]
    log = staging / f"{builder}.log"
    print(f"  jupyter-book build --builder {builder} (log: {shown(log)})",
          flush=True)
    with log.open("w") as fh:
        result = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=staging)
    if result.returncode != 0:
        raise BuildError(f"jupyter-book {builder} build failed (full log: {log}):\n"
                         + build_errors(log, staging))


def build_errors(log: Path, staging: Path) -> str:
    """The lines of a failed build that name the cause, not the traceback around it."""
    lines = log.read_text(errors="replace").splitlines()
    found = [ln for ln in lines if re.search(r"(?i)(error|exception)\b", ln)
             and not ln.lstrip().startswith(("File ", "Traceback", "raise "))]
    tex_log = staging / "_build" / "latex" / "book.log"
    if tex_log.exists():  # LaTeX reports its errors as lines starting with "!"
        tex = tex_log.read_text(errors="replace").splitlines()
        found += [" ".join(tex[i:i + 3]) for i, ln in enumerate(tex) if ln.startswith("!")]
    found = found or lines[-15:]
    return "\n".join(ANSI.sub("", ln) for ln in found[:12])


def prepare_environment() -> None:
    """What every executed chapter sees: this checkout's package, plain-text output,
    and claims that are recorded rather than fatal (``record``), unless the caller
    chose a mode (the tests choose ``strict``) or runs under CI (strict too)."""
    os.environ.update(LLMFS_BOOK_BUILD="1", NO_COLOR="1", TERM="dumb",
                      PYDEVD_DISABLE_FILE_VALIDATION="1")
    if not os.environ.get("LLMFS_CLAIMS") and not os.environ.get("CI"):
        os.environ["LLMFS_CLAIMS"] = "record"
    paths = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))


def check_data() -> None:
    from llm_from_scratch.data.corpus import DataNotFoundError, local_data_dir

    try:
        local_data_dir()
    except DataNotFoundError as exc:
        raise BuildError(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="auto", help="smoke, cpu, gpu or auto")
    parser.add_argument("--chapters", nargs="*", help="only these (e.g. 01 02)")
    parser.add_argument("--pdf", action="store_true", help="build the PDF")
    parser.add_argument("--html", action="store_true", help="build the HTML")
    parser.add_argument("--force", action="store_true", help="re-execute every chapter")
    parser.add_argument("--source", type=Path, help="the folder holding _config.yml, "
                        "_toc.yml, book/ and chapters/ (default: this checkout)")
    args = parser.parse_args(argv)
    try:
        if args.source:
            use_source(args.source)
        try:
            profile = resolve_profile_name(args.profile)
        except UnknownProfileError as exc:
            raise BuildError(f"PROFILE: {exc}") from None
        if export.drift():
            raise BuildError("llm_from_scratch/ differs from the chapters: "
                             "run `make export` (or undo the edit to the generated module)")
        check_data()
        staging = BUILD / profile
        load_at_start = load_average()
        stage(staging)
        prepare_environment()
        print(f"book: profile {profile}, staging in {shown(staging)}")
        timings = {p.name: execute(p, staging / "chapters" / p.name, profile, args.force)
                   for p in chapter_paths(args.chapters)}
        if args.chapters:  # a partial run still reports every staged chapter
            for p in chapter_paths():
                dest = staging / "chapters" / p.name
                if p.name not in timings and dest.exists():
                    meta = json.loads(dest.read_text())["metadata"].get("llmfs", {})
                    timings[p.name] = meta.get("seconds", float("nan"))
        staged = {name: json.loads((staging / "chapters" / name).read_text(
            encoding="utf-8")) for name in timings}
        checks = {name: claims_in(nb) for name, nb in staged.items()}
        loads = {name: nb["metadata"].get("llmfs", {}).get("load")
                 for name, nb in staged.items()}
        preface = (SOURCE / "book" / "preface.md").read_text(encoding="utf-8")
        preface = chapter_list(preface, book_outline(SOURCE / "_toc.yml"))
        preface = build_summary(preface, profile, timings)
        preface += build_info(profile, timings, load_at_start, checks, loads)
        staged_preface = staging / "book" / "preface.md"
        staged_preface.write_text(preface, encoding="utf-8")
        (staging / "timings.json").write_text(json.dumps(timings, indent=1))
        if args.pdf:
            pdf = staging / "book.pdf"
            pdf.unlink(missing_ok=True)  # never leave an older PDF looking current
            staged_preface.write_text(latex_front_matter(preface), encoding="utf-8")
            chapters = (staging / "chapters").glob("*.ipynb")
            executed = {path: path.read_bytes() for path in chapters}
            latex_numbering(staging)
            latex_keep_leadins(staging)
            try:
                jupyter_book(staging, "pdflatex")
            finally:  # the HTML is built from the same staging copy
                staged_preface.write_text(preface, encoding="utf-8")
                for path, content in executed.items():
                    path.write_bytes(content)
            shutil.copy2(staging / "_build" / "latex" / "book.pdf", pdf)
            print(f"book: PDF at {shown(pdf)}")
        if args.html:
            jupyter_book(staging, "html")
            print(f"book: HTML at {shown(staging / '_build/html/index.html')}")
        return report_claims(checks)
    except BuildError as exc:
        print(f"book: error: {exc}", file=sys.stderr)
        return 2


def report_claims(checks: dict[str, tuple[int, list[str], list[str]]]) -> int:
    """Print the claims that did not hold and the busy timings; 1 if a claim failed,
    so that a build with a ✘ is never mistaken for a clean one."""
    for name, (_, _, notes) in checks.items():
        if notes:
            print("book: warning: timings on a busy machine: "
                  f"{busy_summary(name, notes)}", file=sys.stderr)
    failed = failed_claims(checks)
    for name, line in failed:
        print(f"book: claim did not hold: {name}: {line}", file=sys.stderr)
    if failed:
        print(f"book: error: {len(failed)} claim(s) did not hold on this machine; the "
              "book was built with each marked ✘ and listed in About this build",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
