"""The GPU check's driver: one step per call, then one report (``benchmarks/gpu.sh``).

    python benchmarks/gpu_check.py install --out DIR      # missing modules, from wheels
    python benchmarks/gpu_check.py STEP --out DIR [--dry-run]
    python benchmarks/gpu_check.py report DIR             # DIR/gpu-check.{json,md}

The steps, each in its own process (gpu.sh runs them in this order, each under a time
limit, so that one that fails, hangs or crashes the GPU context costs only itself):

- ``environment``: the device, its dense bf16 peak (``train.peak_flops``), versions,
  the data;
- ``attention``: ``benchmarks/attention.py --check``: every attention path against
  float32 SDPA in bf16 (Triton forward and backward, tiled, SDPA's backends one by one,
  flash_attn if importable), then the time of those that pass at T = 1k-16k, as
  ratios to SDPA's;
- ``training``: the ``gpu`` profile's model trained by the package's loop for a fixed
  number of steps in bf16, eager and compiled: tokens/s and MFU;
- ``adamw``: the hand-written AdamW against ``torch.optim.AdamW`` (fused and foreach)
  on the same model's parameters: equal first, then the step time;
- ``generation``: ``benchmarks/generate.py``, ours against transformers' ``generate``,
  greedy, batch 1 and 16, bf16 and fp32: identical tokens, tokens/s.

``--dry-run`` runs every step at tiny sizes (the ``smoke`` profile's model) on
whatever device there is, so that CI proves the check still works without a GPU; its
numbers mean nothing. Each step writes ``DIR/<step>.json``; ``report`` gathers them,
with a line for each step that left none (it timed out, or crashed).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
import traceback
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STEPS = ["environment", "attention", "training", "adamw", "generation"]
# Modules the steps import, and the wheel that provides each (pip's name, normalised).
NEEDS = {"torch": "torch", "numpy": "numpy", "regex": "regex", "tqdm": "tqdm",
         "safetensors": "safetensors", "tokenizers": "tokenizers",
         "transformers": "transformers", "triton": "triton"}
NO_GPU = 3  # exit status of `environment` when there is no CUDA device and no dry run


class Sizes:
    """Every size of the check: the GPU run's, or a dry run's (tiny, any device)."""

    def __init__(self, dry: bool):
        self.dry = dry
        self.profile = "smoke" if dry else "gpu"
        self.attention = (["--seq-lens", "32", "64", "--batch", "1", "--heads", "2",
                           "--head-dim", "16", "--tile", "16", "--repeats", "1",
                           "--check", "40"] if dry else
                          ["--seq-lens", "1024", "2048", "4096", "8192", "16384",
                           "--batch", "4", "--heads", "16", "--head-dim", "64",
                           "--tile", "256", "--repeats", "5", "--check", "1000",
                           "--quadratic-max-len", "8192"])
        self.train_steps, self.train_warmup = (4, 1) if dry else (30, 5)
        self.adamw_steps = 3 if dry else 20
        self.gen = (["--lengths", "8", "--prompt-len", "4", "--rounds", "1"] if dry
                    else ["--lengths", "256", "--prompt-len", "32", "--rounds", "3"])
        self.gen_batches = (1, 16)


def load_benchmark(name: str):
    """benchmarks/<name>.py as a module (benchmarks/ is no package)."""
    spec = importlib.util.spec_from_file_location(
        f"bench_{name}", Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def device_and_sync():
    import torch

    from llm_from_scratch.config.runtime import pick_device

    device = pick_device()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    return device, sync


# --- installing what is missing, from carried wheels (standard library only) ---

def install(wheels: Path, site: Path, needs: dict[str, str]) -> dict:
    """Install each missing module's wheel from ``wheels`` into ``site`` (a folder on
    PYTHONPATH): with pip when it is there, else by unpacking the wheel, which is
    what installing a wheel amounts to."""
    sys.path.insert(0, str(site))
    missing = [m for m in needs if importlib.util.find_spec(m) is None]
    done, absent = {}, []
    for module in missing:
        tags = (f"-cp{sys.version_info.major}{sys.version_info.minor}-", "-py3-")
        name = needs[module].replace("-", "_")
        found = sorted(w for w in wheels.glob(f"{name}-*.whl")
                       if any(t in w.name for t in tags))  # wheels for this Python
        if not found:
            absent.append(module)
            continue
        site.mkdir(parents=True, exist_ok=True)
        pip = subprocess.run([sys.executable, "-m", "pip", "install", "--no-index",
                              "--no-deps", "--quiet", "--target", str(site),
                              str(found[-1])], capture_output=True, text=True)
        if pip.returncode != 0:  # no pip, or it refused: unpack
            with zipfile.ZipFile(found[-1]) as whl:
                whl.extractall(site)
        importlib.invalidate_caches()
        done[module] = {"wheel": found[-1].name,
                        "how": "pip" if pip.returncode == 0 else "unpacked",
                        "imports": importlib.util.find_spec(module) is not None}
    return {"missing": missing, "installed": done, "no_wheel": absent,
            "site": str(site)}


# --- the steps ---

def step_environment(sizes: Sizes, out_dir: Path, save) -> dict:
    import torch

    from llm_from_scratch.data.corpus import local_data_dir
    from llm_from_scratch.training.precision import PEAK_FLOPS, peak_flops

    device, _ = device_and_sync()
    if device.type != "cuda" and not sizes.dry:
        raise SystemExit(NO_GPU)
    versions = {}
    for name in ("torch", "triton", "transformers", "tokenizers", "numpy",
                 "flash_attn"):
        try:
            versions[name] = __import__(name).__version__
        except Exception as exc:  # noqa: BLE001 - reported, not fatal
            versions[name] = f"not importable ({type(exc).__name__})"
    data = local_data_dir()
    files = sorted(data.glob("*.txt")) if data else []
    out = {"device": str(device), "python": platform.python_version(),
           "cpus": os.cpu_count(), "versions": versions, "dry_run": sizes.dry,
           "data": {"dir": str(data), "files": {p.name: p.stat().st_size
                                                for p in files}}}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        out.update(gpu=props.name, capability=f"{props.major}.{props.minor}",
                   memory_gib=round(props.total_memory / 2**30, 1),
                   bf16=torch.cuda.is_bf16_supported(),
                   peak_bf16_tflops=(peak_flops(device, "bf16") or 0) / 1e12 or None,
                   peak_table=sorted(PEAK_FLOPS["bf16"]))
    return out


def step_attention(sizes: Sizes, out_dir: Path, save) -> dict:
    import torch

    if not torch.cuda.is_available():  # the kernel runs in Triton's interpreter
        os.environ["TRITON_INTERPRET"] = "1"
    bench = load_benchmark("attention")
    impls = ["tiled", "triton", "SDPA-flash", "SDPA-mem", "SDPA-cudnn", "SDPA-math"]
    try:  # installed is not enough: an extension built for another torch fails here
        import flash_attn  # noqa: F401
        have_fa = True
    except Exception:  # noqa: BLE001
        have_fa = False
    path = out_dir / "attention-bench.json"
    rc = bench.main([*sizes.attention, "--backends", "--impls", *impls,
                     *(["flash_attn"] if have_fa else []), "--json", str(path)])
    result = json.loads(path.read_text())
    result["flash_attn"] = "measured" if have_fa else "not importable"
    if rc != 0:
        raise RuntimeError(f"benchmarks/attention.py exited with {rc}")
    return result


def step_training(sizes: Sizes, out_dir: Path, save) -> dict:
    import dataclasses

    import torch

    from llm_from_scratch.data.batches import ShuffledBatches
    from llm_from_scratch.data.corpus import TokenWindows
    from llm_from_scratch.model.gpt import GPT, GPTConfig, flops_per_token
    from llm_from_scratch.data.prepare import load_or_train, prepare_tokens
    from llm_from_scratch.training.precision import peak_flops
    from llm_from_scratch.config.profiles import get_profile
    from llm_from_scratch.training.loop import train
    from llm_from_scratch.config.runtime import set_seed

    P = get_profile(sizes.profile)
    device, _ = device_and_sync()
    start = time.perf_counter()
    tok = load_or_train(P.name)
    shards = prepare_tokens(P.name)
    data_seconds = time.perf_counter() - start
    mconfig = GPTConfig.from_profile(P.model, tok.get_vocab_size())
    ctx = mconfig.context_len
    windows = TokenWindows(shards["train"], ctx)
    precision = "bf16"
    fpt = flops_per_token(mconfig)["total"]
    peak = peak_flops(device, precision)
    step_tokens = P.train.batch_size * P.train.loop.grad_accum * ctx
    override = os.environ.get("TORCH_COMPILE_OVERRIDE_BACKENDS")
    runs = []
    out = {"profile": P.name, "precision": precision, "device": str(device),
           "compile_backend": override.split(":")[-1] + " (from "
           "TORCH_COMPILE_OVERRIDE_BACKENDS)" if override else "inductor",
           "parameters": GPT(mconfig).num_parameters(),
           "flops_per_token": fpt, "peak_flops": peak,
           "batch": f"{P.train.batch_size} x {P.train.loop.grad_accum} x {ctx}",
           "tokens_per_step": step_tokens,
           "data": {"train_tokens": sum(len(t) for t in windows.tokens),
                    "windows": len(windows), "prepare_seconds": data_seconds,
                    "tokens_trained": 0, "passes_per_run": step_tokens
                    * sizes.train_steps / (len(windows) * ctx)},
           "runs": runs}
    for compiled in (False, True):
        set_seed(P.train.seed)
        model = GPT(mconfig).to(device)
        loop = dataclasses.replace(
            P.train.loop, max_steps=sizes.train_steps, precision=precision,
            compile=compiled, eval_interval=0, sample_steps=(), checkpoint_interval=0)
        batches = ShuffledBatches(windows, P.train.batch_size, seed=P.train.seed)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        result = train(model, batches, loop, flops_per_token=fpt, peak_flops=peak)
        rows = result.rows("loss")
        w = sizes.train_warmup  # steps left out of the rate: compilation, warm-up
        tok_s = ((rows[-1]["tokens"] - rows[w - 1]["tokens"])
                 / (rows[-1]["seconds"] - rows[w - 1]["seconds"]))
        runs.append({
            "compiled": compiled, "steps": result.step, "timed_steps": len(rows) - w,
            "first_step_s": rows[0]["seconds"], "tok_s": tok_s,
            "mfu": tok_s * fpt / peak if peak else None,
            "loss_first": rows[0]["loss"], "loss_last": rows[-1]["loss"],
            "peak_memory_gib": (torch.cuda.max_memory_allocated() / 2**30
                                if device.type == "cuda" else None)})
        out["data"]["tokens_trained"] += result.tokens
        save(out)  # the eager run survives a compiled run that overruns its limit
        del model
    return out


def step_adamw(sizes: Sizes, out_dir: Path, save) -> dict:
    import copy

    import torch

    from llm_from_scratch.model.gpt import GPT, GPTConfig
    from llm_from_scratch.training.optim import AdamW, param_groups
    from llm_from_scratch.config.profiles import get_profile

    P = get_profile(sizes.profile)
    device, sync = device_and_sync()
    torch.manual_seed(0)
    base = GPT(GPTConfig.from_profile(P.model, P.data.vocab_size)).to(device)
    g = torch.Generator(device=device).manual_seed(1)
    grads = [torch.randn(p.shape, device=device, generator=g) * 1e-2
             for p in base.parameters()]
    kinds = {
        "ours": lambda groups: AdamW(groups, lr=P.train.loop.lr),
        "torch fused": lambda groups: torch.optim.AdamW(groups, lr=P.train.loop.lr,
                                                        fused=True),
        "torch foreach": lambda groups: torch.optim.AdamW(groups, lr=P.train.loop.lr,
                                                          foreach=True),
    }
    models, optims, times = {}, {}, {}
    for name, make in kinds.items():
        models[name] = copy.deepcopy(base)
        for p, grad in zip(models[name].parameters(), grads):
            p.grad = grad.clone()
        optims[name] = make(param_groups(models[name], P.train.loop.weight_decay))
    for _ in range(3):  # equal first: three identical steps of each
        for opt in optims.values():
            opt.step()
    start = list(base.parameters())
    ref = list(models["torch fused"].parameters())
    moved = max((r - s).abs().max().item() for r, s in zip(ref, start))
    errors = {name: max((a - b).abs().max().item()
                        for a, b in zip(m.parameters(), ref)) / moved
              for name, m in models.items()}
    for name, opt in optims.items():
        t = []
        for _ in range(sizes.adamw_steps):
            sync()
            t0 = time.perf_counter()
            opt.step()
            sync()
            t.append(time.perf_counter() - t0)
        times[name] = 1e3 * sorted(t)[len(t) // 2]
    # Weights are rounded to float32 after every step: an ulp of a weight of size 1
    # is 1.2e-7, about 1e-4 of three updates of size lr; 1e-3 leaves headroom.
    tol = 1e-3
    return {"parameters": base.num_parameters(), "device": str(device),
            "median_ms": times, "ratio_ours_to_fused": times["ours"]
            / times["torch fused"], "error_vs_fused": errors, "tolerance": tol,
            "equal": all(e <= tol for e in errors.values())}


def step_generation(sizes: Sizes, out_dir: Path, save) -> dict:
    bench = load_benchmark("generate")
    rows, codes = [], {}
    for dtype in ("bf16", "fp32"):
        for batch in sizes.gen_batches:
            path = out_dir / f"generate-{dtype}-b{batch}.json"
            codes[f"{dtype} batch {batch}"] = bench.main([
                "--profile", sizes.profile, *sizes.gen, "--batch", str(batch),
                "--dtype", dtype, "--uncached-rounds", "0", "--json", str(path)])
            for row in json.loads(path.read_text())["rows"]:
                rows.append({"dtype": dtype, **row})
            save({"profile": sizes.profile, "rows": rows})
    return {"profile": sizes.profile, "rows": rows, "exit_codes": codes,
            "same_tokens": {f"{r['dtype']} batch {r['batch']}": r["same_tokens"]
                            for r in rows}}


def run_step(name: str, out_dir: Path, dry: bool) -> int:
    sizes = Sizes(dry)
    start = time.perf_counter()
    record = {"step": name, "dry_run": dry}
    code = 0
    path = out_dir / f"{name}.json"

    def save(partial: dict) -> None:  # what is done so far, should the rest not be
        record.update(result=partial, status="incomplete")
        path.write_text(json.dumps(record, indent=1, default=str))

    try:
        record["result"] = globals()[f"step_{name}"](sizes, out_dir, save)
        record["status"] = "ok"
    except SystemExit as exc:
        code = int(exc.code or 0)
        record.update(status="failed", why="no CUDA device (use --dry-run)")
    except BaseException as exc:  # noqa: BLE001 - reported; the other steps still run
        record.update(status="failed", why=f"{type(exc).__name__}: {exc}"[:500],
                      traceback=traceback.format_exc()[-3000:])
        traceback.print_exc()
        code = 1
    record["seconds"] = time.perf_counter() - start
    path.write_text(json.dumps(record, indent=1, default=str))
    print(f"gpu-check: {name}: {record['status']} in {record['seconds']:.1f} s"
          + (f" ({record['why']})" if "why" in record else ""), flush=True)
    return code


# --- the report: one JSON, one Markdown file of tables ---

def _load_step(out_dir: Path, name: str) -> dict:
    """A step's record; for one that did not finish, why, and its last output."""
    path, rc_file = out_dir / f"{name}.json", out_dir / f"{name}.rc"
    record = (json.loads(path.read_text()) if path.exists()
              else {"step": name, "status": "no result"})
    if record["status"] not in ("no result", "incomplete"):
        return record
    rc = rc_file.read_text().strip() if rc_file.exists() else None
    record["why"] = {None: "not run", "budget": "not run: gpu.sh's time budget spent",
                     "124": "timed out: past gpu.sh's limit for it",
                     "137": "killed: out of memory, or past its limit"}.get(
        rc, f"exited with status {rc} before it finished")
    if record["status"] == "incomplete":
        record["why"] += "; what it finished is kept"
    log = out_dir / f"{name}.log"
    if rc not in (None, "budget") and log.exists():
        record["log_tail"] = log.read_text(errors="replace").splitlines()[-15:]
    return record


def _fmt(x, spec=".2f", none="-", unit="") -> str:
    return none if x is None else format(x, spec) + unit


def _mfu(run: dict) -> str:
    return _fmt(run["mfu"] and 100 * run["mfu"], ".1f", unit="%")


def _summaries(steps: dict) -> list[tuple[str, str, str]]:
    """(what, result, target) lines of the headline table."""
    lines = []
    env = steps["environment"].get("result")
    if env:
        what = env.get("gpu") or f"{env['device']} (no GPU)"
        peak = env.get("peak_bf16_tflops")
        lines.append(("device", f"{what}, capability {env.get('capability', '-')}, "
                      f"dense bf16 peak {_fmt(peak, '.0f')} TFLOP/s; torch "
                      f"{env['versions']['torch']}, triton {env['versions']['triton']}",
                      ""))
    att = steps["attention"].get("result")
    if att:
        checks = "; ".join(
            f"{c['impl']} {c['status'].split(':')[0]}" + (
                f" ({_fmt(c.get('out_err'), '.1e')}/{_fmt(c.get('grad_err'), '.1e')})"
                if c["status"] in ("ok", "wrong") else "") for c in att["checks"])
        lines.append(("attention, correct", checks,
                      f"error (out/grads) <= {att['checks'][0]['tolerance']:g} of "
                      "fp32 SDPA"))
        tri = {r["T"]: r["fwd_bwd_ratio"] for r in att["rows"] if r["impl"] == "triton"}
        lines.append(("Triton fwd+bwd / SDPA", ", ".join(
            f"{_fmt(v)} at {t}" for t, v in tri.items()) or "not timed",
            "<= 1.25 at 2k-8k"))
    tr = steps["training"].get("result")
    if tr:
        lines.append(("training, bf16", "; ".join(
            f"{'compiled' if r['compiled'] else 'eager'} {r['tok_s']:,.0f} tokens/s, "
            f"MFU {_mfu(r)}" for r in tr["runs"]),
            "MFU >= 45%"))
    ad = steps["adamw"].get("result")
    if ad:
        lines.append(("AdamW step", ", ".join(
            f"{k} {v:.2f} ms" for k, v in ad["median_ms"].items())
            + f"; ours / fused {ad['ratio_ours_to_fused']:.2f}x; equal: {ad['equal']}",
            f"equal within {ad['tolerance']:g} of the update"))
    gen = steps["generation"].get("result")
    if gen:
        lines.append(("generation, ours / HF", "; ".join(
            f"{r['dtype']} batch {r['batch']}: {r['ratio']:.2f}x"
            + ("" if r["same_tokens"] else f" (tokens part at {r['first_difference']})")
            for r in gen["rows"]), ">= 1.5x at batch 1; tokens identical"))
    return lines


def _details(steps: dict) -> list[str]:
    out = []
    att = steps["attention"].get("result")
    if att:
        out += ["", f"Attention: {att['device']}, {att['dtype']}, batch "
                f"{att['batch']}, {att['heads']} heads of {att['head_dim']}; ms, and "
                "x = time / SDPA's at the same T.", "",
                "| T | impl | fwd ms | fwd x | fwd+bwd ms | fwd+bwd x |",
                "|---:|---|---:|---:|---:|---:|"]
        out += [f"| {r['T']} | {r['impl']} | {r['fwd_ms']:.3f} | {_fmt(r['fwd_ratio'])}"
                f" | {_fmt(r['fwd_bwd_ms'], '.3f')} | {_fmt(r['fwd_bwd_ratio'])} |"
                for r in att["rows"]]
        out += [f"| {s['T']} | {s['impl']} | {s['why']} | | | |"
                for s in att.get("stopped", [])]
    tr = steps["training"].get("result")
    if tr:
        d = tr["data"]
        out += ["", f"Training: profile `{tr['profile']}`, {tr['parameters']:,} "
                f"parameters, {tr['precision']}, batch {tr['batch']} tokens a step, "
                f"compiled with {tr['compile_backend']}. "
                f"Data: {d['train_tokens']:,} training tokens ({d['windows']:,} "
                f"windows), {d['passes_per_run']:.2f} passes per run, "
                f"{d['tokens_trained']:,} tokens trained in all. MFU = tokens/s x "
                f"{tr['flops_per_token']:,} FLOPs a token (6N plus attention, "
                "`model.flops_per_token`) / the dense bf16 peak "
                f"({_fmt(tr['peak_flops'] and tr['peak_flops'] / 1e12, '.0f')} "
                "TFLOP/s).", "",
                "| run | steps (timed) | first step s | tokens/s | MFU | loss first"
                " -> last | peak GiB |", "|---|---:|---:|---:|---:|---|---:|"]
        out += [f"| {'compiled' if r['compiled'] else 'eager'} | {r['steps']} "
                f"({r['timed_steps']}) | {r['first_step_s']:.1f} | {r['tok_s']:,.0f} |"
                f" {_mfu(r)} | {r['loss_first']:.3f}"
                f" -> {r['loss_last']:.3f} | {_fmt(r['peak_memory_gib'], '.1f')} |"
                for r in tr["runs"]]
    gen = steps["generation"].get("result")
    if gen:
        out += ["", "Generation: greedy, random weights of the profile's shape; "
                "tokens/s of the fastest round. In bf16 the two implementations "
                "round differently, so near-ties may part; the summary says where "
                "(sequence, position). fp32 is the check that the tokens agree.", "",
                "| dtype | batch | tokens | ours tok/s | HF tok/s | ratio | same |",
                "|---|---:|---:|---:|---:|---:|---|"]
        out += [f"| {r['dtype']} | {r['batch']} | {r['tokens']} | "
                f"{r['ours_tok_s']:,.0f} | {r['hf_tok_s']:,.0f} | {r['ratio']:.2f} | "
                f"{r['same_tokens']} |"
                for r in gen["rows"]]
    return out


def write_report(out_dir: Path) -> str:
    """Gather the steps' results into gpu-check.json and gpu-check.md; return the
    Markdown."""
    steps = {name: _load_step(out_dir, name) for name in STEPS}
    install_file = out_dir / "install.json"
    report = {"folder": str(out_dir),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "install": (json.loads(install_file.read_text())
                          if install_file.exists() else None), "steps": steps}
    (out_dir / "gpu-check.json").write_text(json.dumps(report, indent=1, default=str))
    dry = any(s.get("dry_run") for s in steps.values())
    md = [f"# GPU check, {report['date']}" + (" (dry run: tiny sizes, the numbers "
                                               "mean nothing)" if dry else ""), "",
          "| step | status | s |", "|---|---|---:|"]
    md += [f"| {n} | {s['status']}" + (f": {s['why']}" if s.get("why") else "")
           + f" | {_fmt(s.get('seconds'), '.1f')} |" for n, s in steps.items()]
    md += ["", "| what | measured | target |", "|---|---|---|"]
    md += [f"| {a} | {b} | {c} |" for a, b, c in _summaries(steps)]
    md += _details(steps)
    for name, step in steps.items():  # the last words of a step that did not finish
        if step.get("log_tail") or step.get("traceback"):
            tail = step.get("log_tail") or step["traceback"].splitlines()[-8:]
            md += ["", f"{name}, last output:", "", "```", *tail, "```"]
    text = "\n".join(md) + "\n"
    (out_dir / "gpu-check.md").write_text(text)
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["install", *STEPS, "report"])
    parser.add_argument("dir", nargs="?", type=Path, help="report: the folder")
    parser.add_argument("--out", type=Path, help="the check's folder")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--wheels", type=Path, default=ROOT / ".whl")
    args = parser.parse_args(argv)
    out_dir = args.out or args.dir
    if out_dir is None:
        parser.error("--out DIR is required")
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.what == "install":
        extra = os.environ.get("GPU_CHECK_EXTRA_NEEDS", "")  # tests add a module
        needs = {**NEEDS, **{m: m for m in extra.split()}}
        result = install(args.wheels, args.wheels / "site", needs)
        (out_dir / "install.json").write_text(json.dumps(result, indent=1))
        print(f"gpu-check: missing {result['missing'] or 'nothing'}; installed "
              f"{sorted(result['installed']) or 'nothing'}; no wheel for "
              f"{result['no_wheel'] or 'none'}", flush=True)
        return 0
    if args.what == "report":
        print(write_report(out_dir))
        return 0
    return run_step(args.what, out_dir, args.dry_run)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))  # this checkout's package
    sys.exit(main())
