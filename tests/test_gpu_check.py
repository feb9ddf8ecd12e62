"""benchmarks/gpu.sh, the prepared GPU check, works where there is no GPU: its dry run
runs every step at tiny sizes through the same script, installs a module the
interpreter lacks from a carried wheel, and a step that fails leaves the rest running.

The dry run's numbers mean nothing; what is checked is that every step ran, checked
what it must check (attention against float32 SDPA, AdamW against torch's, our tokens
against transformers') and reported it.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu.sh"
PROBE = "llmfs_wheel_probe"  # a module no interpreter has: only its wheel provides it
pytestmark = pytest.mark.timeout(600)


def probe_wheel(folder: Path) -> Path:
    """A minimal, valid pure-Python wheel holding the module PROBE."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{PROBE}-0.1-py3-none-any.whl"
    info = f"{PROBE}-0.1.dist-info"
    files = {f"{PROBE}/__init__.py": "VALUE = 42\n",
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {PROBE}\nVersion: 0.1\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\n"
                              "Root-Is-Purelib: true\nTag: py3-none-any\n"}
    files[f"{info}/RECORD"] = "".join(f"{n},,\n" for n in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as whl:
        for name, text in files.items():
            whl.writestr(name, text)
    return path


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHON": sys.executable,
               "LLMFS_HOME": str(tmp_path / "home"), "GPU_WHEELS": str(tmp_path / "whl"),
               **env}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True,
                          env=environ, cwd=tmp_path)


def test_dry_run_exercises_every_step_and_writes_one_report(tmp_path, data_dir):
    probe_wheel(tmp_path / "whl")
    out = tmp_path / "report"
    start = time.perf_counter()
    done = run(tmp_path, "--dry-run", "--out", str(out),
               GPU_CHECK_EXTRA_NEEDS=PROBE,
               **({"LLMFS_DATA": str(data_dir)} if data_dir else {}))
    seconds = time.perf_counter() - start
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    print(f"gpu.sh --dry-run: {seconds:.1f} s")
    report = json.loads((out / "gpu-check.json").read_text())
    steps = report["steps"]
    assert {n: s["status"] for n, s in steps.items()} == {
        n: "ok" for n in ("environment", "attention", "training", "adamw",
                          "generation")}, {n: s.get("why") for n, s in steps.items()}
    # Installed from the carried wheel, into .whl/site, and importable from there.
    install = report["install"]
    assert install["missing"] == [PROBE] and install["installed"][PROBE]["imports"]
    assert (tmp_path / "whl" / "site" / PROBE / "__init__.py").exists()
    # Attention: every path checked against float32 SDPA before it was timed.
    att = steps["attention"]["result"]
    checks = {c["impl"]: c for c in att["checks"]}
    for impl in ("SDPA", "tiled", "triton", "SDPA-math"):
        assert checks[impl]["status"] == "ok", checks[impl]
        assert checks[impl]["out_err"] <= checks[impl]["tolerance"]
    assert checks["triton"]["grad_err"] <= checks["triton"]["tolerance"]
    timed = {r["impl"] for r in att["rows"]}
    assert timed == {n for n, c in checks.items() if c["status"] == "ok"}
    assert all(r["fwd_ms"] > 0 for r in att["rows"])
    # Training: eager and compiled, the same first loss, a rate for each.
    runs = steps["training"]["result"]["runs"]
    assert [r["compiled"] for r in runs] == [False, True]
    assert all(r["tok_s"] > 0 and math.isfinite(r["loss_last"]) for r in runs)
    assert runs[0]["loss_first"] == pytest.approx(runs[1]["loss_first"], rel=1e-2)
    assert steps["training"]["result"]["data"]["train_tokens"] > 0
    adamw = steps["adamw"]["result"]
    assert adamw["equal"] and set(adamw["median_ms"]) == {"ours", "torch fused",
                                                          "torch foreach"}
    gen = steps["generation"]["result"]["rows"]
    assert {(r["dtype"], r["batch"]) for r in gen} == {
        (d, b) for d in ("bf16", "fp32") for b in (1, 16)}
    assert all(r["same_tokens"] for r in gen if r["dtype"] == "fp32")
    # One Markdown report, printed as well.
    md = (out / "gpu-check.md").read_text()
    assert "| what | measured | target |" in md and "dry run" in md
    assert md.strip() in done.stdout


def test_a_failing_step_reports_why_and_the_rest_still_run(tmp_path):
    empty = tmp_path / "no-data"
    empty.mkdir()
    out = tmp_path / "report"
    done = run(tmp_path, "--dry-run", "--out", str(out), "--steps", "training adamw",
               LLMFS_DATA=str(empty))
    assert done.returncode == 0, done.stderr[-3000:]
    steps = json.loads((out / "gpu-check.json").read_text())["steps"]
    assert steps["training"]["status"] == "failed"
    assert "DataNotFoundError" in steps["training"]["why"]
    assert steps["adamw"]["status"] == "ok"
    assert steps["attention"] == {"step": "attention", "status": "no result",
                                  "why": "not run"}
    assert "training | failed: DataNotFoundError" in done.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="here the check would run")
def test_without_a_gpu_or_dry_run_it_stops_and_says_so(tmp_path):
    done = run(tmp_path, "--out", str(tmp_path / "report"))
    assert done.returncode == 3
    assert "no CUDA device here; run with --dry-run" in done.stdout


def test_a_step_past_the_time_budget_is_not_started_and_the_report_says_so(tmp_path):
    out = tmp_path / "report"
    done = run(tmp_path, "--dry-run", "--out", str(out), "--steps", "adamw",
               GPU_CHECK_BUDGET="5")
    assert done.returncode == 0, done.stderr[-3000:]
    adamw = json.loads((out / "gpu-check.json").read_text())["steps"]["adamw"]
    assert adamw["status"] == "no result" and "time budget spent" in adamw["why"]
