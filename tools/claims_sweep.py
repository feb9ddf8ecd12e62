"""Run the chapters' claims over seeds and precisions, and report their margins.

    python tools/claims_sweep.py --profile cpu                  # the whole sweep
    python tools/claims_sweep.py --profile smoke --chapters 04 --seeds 0 1

Each chapter that makes a claim about an outcome (``llm_from_scratch.book.claims``) is
executed with papermill up to its last claim cell, once per seed offset and precision,
through the profile's overrides (``LLMFS_SEED``, ``LLMFS_PRECISION``; see
``llm_from_scratch.config.profiles``). What varies is the chapter's own run: chapter 08
re-tunes with other seeds from chapter 04's pretrained model, chapter 09 re-samples
its pairs and re-runs DPO from chapter 08's model, so the sweep costs the chapters'
runs, not the whole pipeline's. A chapter whose claims are computed in one precision
by construction (04's minimal loop, 10's bits per byte) runs once per seed.

The runs write into copies of the artifacts folder (``--home``), one per chapter, so
the book's own artifacts (chapter 08's exported model, say) are never replaced by a
sweep's. Claims are recorded, not raised (``LLMFS_CLAIMS=record``). The report
gives, for each claim, in how many runs it held and the range of every value it
measured; the runs' notebooks and a JSON record stay in ``--out`` (an executed run is
reused unless ``--force``). The exit status is 1 when a claim failed in any run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ROOT / "chapters"
sys.path.insert(0, str(ROOT))

from llm_from_scratch.book.claims import read_claims  # noqa: E402

# chapter prefix -> (LLMFS_SEED scope, LLMFS_PRECISION scope or None when fixed)
SCOPES = {
    "04": ("chapter", None),  # the minimal loop is fp32 by construction
    "08": ("sft", "sft"),
    "09": ("dpo", "dpo"),
    "10": ("chapter", None),  # bits per byte are scored in fp32
    "A": ("chapter", "chapter"),
}
PRECISIONS = ("bf16", "fp32")


def chapter_file(prefix: str) -> Path:
    found = sorted(CHAPTERS.glob(f"{prefix}_*.ipynb"))
    if len(found) != 1:
        raise SystemExit(f"claims_sweep: no single chapter starts with {prefix!r}")
    return found[0]


def through_last_claim(nb: dict) -> dict:
    """The notebook cut after its last code cell that calls ``claim(``."""
    last = max((i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"
                and "claim(" in "".join(c["source"])), default=None)
    if last is None:
        raise SystemExit("claims_sweep: the chapter makes no claim")
    return {**nb, "cells": nb["cells"][:last + 1]}


def claim_lines(nb: dict) -> list[dict]:
    """Every claim printed to stdout in an executed notebook (``read_claims``)."""
    return [claim for cell in nb["cells"] for out in cell.get("outputs", [])
            if out.get("name") == "stdout"
            for claim in read_claims("".join(out.get("text", "")))]


def sweep_home(source: Path, profile: str, out: Path, prefix: str) -> Path:
    """A copy of ``source/profile`` for one chapter's runs (made once)."""
    home = out / f"home-{prefix}"
    if not (home / profile).exists():
        if not (source / profile).is_dir():
            raise SystemExit(f"claims_sweep: no {profile} artifacts in {source}: "
                             f"build the book once (make book PROFILE={profile}) or "
                             "pass --home")
        shutil.copytree(source / profile, home / profile, symlinks=True)
    return home


def run_one(chapter: Path, profile: str, seed: int, precision: str | None,
            out: Path, force: bool, home: Path, threads: int | None = None
            ) -> tuple[list[dict], float]:
    import papermill

    seed_scope, precision_scope = SCOPES[chapter.name.split("_")[0]]
    tag = f"{chapter.stem}-seed{seed}-{precision or 'fixed'}"
    dest = out / f"{tag}.ipynb"
    if dest.exists() and not force:
        nb = json.loads(dest.read_text())
        return claim_lines(nb), nb["metadata"].get("llmfs_sweep", {}).get("seconds", 0)
    cut = out / f"{tag}.input.ipynb"
    cut.write_text(json.dumps(through_last_claim(json.loads(chapter.read_text()))))
    env = {"LLMFS_CLAIMS": "record", "LLMFS_SEED": f"{seed_scope}={seed}",
           "LLMFS_HOME": str(home)}
    if threads:  # two sweeps side by side on a small machine: one thread each
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    if precision:
        env["LLMFS_PRECISION"] = f"{precision_scope}={precision}"
    start = time.perf_counter()
    try:
        with mock.patch.dict(os.environ, env):  # the kernel inherits the environment
            papermill.execute_notebook(str(cut), str(dest),
                                       parameters={"profile": profile},
                                       cwd=str(CHAPTERS), kernel_name="python3",
                                       progress_bar=False)
    finally:
        cut.unlink(missing_ok=True)
    seconds = time.perf_counter() - start
    nb = json.loads(dest.read_text())
    nb["metadata"]["llmfs_sweep"] = {"seconds": seconds, "env": env}
    dest.write_text(json.dumps(nb))
    return claim_lines(nb), seconds


def summarise(runs: list[dict]) -> list[dict]:
    """One row per (chapter, claim): runs held, and each measured value's range."""
    rows: dict[tuple, dict] = {}
    for run in runs:
        for i, c in enumerate(run["claims"]):
            row = rows.setdefault((run["chapter"], i, c["text"]), {
                "chapter": run["chapter"], "text": c["text"], "held": 0, "runs": 0,
                "measured": {}})
            row["runs"] += 1
            row["held"] += c["held"]
            for key, value in c["measured"].items():
                if isinstance(value, float):
                    row["measured"].setdefault(key, []).append(value)
    return list(rows.values())


def report(rows: list[dict]) -> str:
    lines = []
    for r in rows:
        ranges = "; ".join(f"{k} {min(v):.4g} to {max(v):.4g}"
                           for k, v in r["measured"].items())
        mark = "✔" if r["held"] == r["runs"] else "✘"
        lines.append(f"{mark} {r['chapter']:<22} {r['held']}/{r['runs']}  {r['text']}")
        if ranges:
            lines.append(f"      {ranges}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="cpu", choices=("smoke", "cpu", "gpu"))
    ap.add_argument("--chapters", nargs="+", default=list(SCOPES),
                    help=f"chapter prefixes (default: {' '.join(SCOPES)})")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2],
                    help="seed offsets (default: 0 1 2; 0 is the book's own run)")
    ap.add_argument("--precisions", nargs="+", default=list(PRECISIONS),
                    choices=PRECISIONS)
    ap.add_argument("--out", type=Path, default=None,
                    help="folder of the runs (default: _build/sweep/PROFILE)")
    ap.add_argument("--home", type=Path,
                    default=Path(os.environ.get("LLMFS_HOME") or ROOT / "artifacts"),
                    help="artifacts folder the runs start from, copied (default: "
                         "$LLMFS_HOME, else artifacts/)")
    ap.add_argument("--force", action="store_true", help="re-run executed runs")
    ap.add_argument("--threads", type=int, default=None,
                    help="CPU threads per run (default: PyTorch's choice)")
    args = ap.parse_args(argv)
    unknown = [c for c in args.chapters if c not in SCOPES]
    if unknown:
        ap.error(f"no claims to sweep in {unknown}: choose from {' '.join(SCOPES)}")
    out = args.out or ROOT / "_build" / "sweep" / args.profile
    out.mkdir(parents=True, exist_ok=True)
    runs, failures = [], 0
    for prefix in args.chapters:
        chapter = chapter_file(prefix)
        fixed = SCOPES[prefix][1] is None
        home = sweep_home(args.home, args.profile, out, prefix)
        for precision in [None] if fixed else args.precisions:
            for seed in args.seeds:
                try:
                    claims, seconds = run_one(chapter, args.profile, seed, precision,
                                              out, args.force, home, args.threads)
                except Exception as exc:  # a failed cell: report it, sweep on
                    print(f"claims_sweep: {chapter.stem} seed +{seed} {precision}: "
                          f"failed ({type(exc).__name__}: {str(exc)[:200]})")
                    failures += 1
                    continue
                runs.append({"chapter": chapter.stem, "seed": seed,
                             "precision": precision or "fixed", "seconds": seconds,
                             "claims": claims})
                held = sum(c["held"] for c in claims)
                print(f"claims_sweep: {chapter.stem} seed +{seed} "
                      f"{precision or 'fixed precision'}: {held}/{len(claims)} held "
                      f"in {seconds:.0f} s", flush=True)
    rows = summarise(runs)
    (out / "sweep.json").write_text(json.dumps({"runs": runs, "rows": rows}, indent=1))
    print(report(rows))
    if failures:
        print(f"claims_sweep: {failures} run(s) failed before their last claim")
    return 1 if failures or any(r["held"] < r["runs"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
