"""Attention speed relative to PyTorch's SDPA, over sequence lengths, in one run.

    python benchmarks/attention.py                       # defaults for the device
    python benchmarks/attention.py --seq-lens 1024 4096 --no-backward

Times one causal attention call (forward) and a forward plus backward pass (backward)
for each implementation, and reports milliseconds and the ratio to SDPA's time, measured
in the same run at the same length (ratio > 1: slower than SDPA). Each time is the
fastest of several runs, the one least disturbed by other work on the machine:

- ``SDPA``: ``torch.nn.functional.scaled_dot_product_attention``, the reference;
- ``naive``: ``attention.naive_attention``, which materialises the T x T scores;
- ``tiled``: ``kernels.tiled.tiled_attention``, the PyTorch online-softmax loop
  (forward only);
- ``triton``: ``kernels.flash.flash_attention``, on CUDA. Interpreted on a CPU it runs
  in NumPy and its time says nothing about the kernel, so it is left out there unless
  asked for by name (``--impls triton``, with ``TRITON_INTERPRET=1``: a dry run);
- ``SDPA-flash``, ``SDPA-mem``, ``SDPA-cudnn``, ``SDPA-math`` (with ``--backends``):
  SDPA held to one of its backends (``torch.nn.attention.sdpa_kernel``), and
  ``flash_attn`` (Dao's package) when it is importable. A backend that cannot run
  these inputs is reported as unavailable.

On CUDA the inputs are bfloat16, on a CPU float32. An implementation that runs out of
memory at some length is reported as ``oom`` there and skipped at longer lengths.

``--check`` compares each implementation's output (and, where it has one, its
gradients) with float32 SDPA on the same inputs before anything is timed, and times
only those within the tolerance: relative to the largest value, 2e-2 in bfloat16 (one
rounding is up to 2^-9; the sums add a few), 1e-4 in float32 (reordered float32 sums,
with headroom for TF32 on a GPU). An implementation that fails is not timed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout

from llm_from_scratch.model.attention import naive_attention  # noqa: E402
from llm_from_scratch.model.kernels.tiled import tiled_attention  # noqa: E402

DEFAULTS = {  # device type -> (sequence lengths, batch, heads, head dim)
    "cuda": ((512, 1024, 2048, 4096, 8192, 16384), 4, 16, 64),
    "cpu": ((256, 512, 1024, 2048), 1, 8, 64),
}


TOLERANCE = {torch.bfloat16: 2e-2, torch.float32: 1e-4}  # see the module docstring
FORWARD_ONLY = {"tiled"}  # its backward is autograd through the loop: not timed


def sdpa_backend(backend):
    """SDPA held to one backend; a backend that cannot run the inputs raises."""
    from torch.nn.attention import sdpa_kernel

    def run(q, k, v):
        with sdpa_kernel(backend):
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return run


def methods(device: torch.device, tile: int, backends: bool = False,
            interpreted: bool = False) -> dict:
    found = {
        "SDPA": lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
        "naive": lambda q, k, v: naive_attention(q, k, v, causal=True),
        "tiled": lambda q, k, v: tiled_attention(q, k, v, True, tile),
    }
    if device.type == "cuda" or interpreted:
        try:
            from llm_from_scratch.model.kernels.flash import flash_attention
        except ImportError as exc:  # triton missing: say so, measure the rest
            print(f"triton: not measured ({exc})", file=sys.stderr)
        else:
            found["triton"] = lambda q, k, v: flash_attention(q, k, v, causal=True)
    if backends:
        from torch.nn.attention import SDPBackend

        for name, backend in [("flash", SDPBackend.FLASH_ATTENTION),
                              ("mem", SDPBackend.EFFICIENT_ATTENTION),
                              ("cudnn", SDPBackend.CUDNN_ATTENTION),
                              ("math", SDPBackend.MATH)]:
            found[f"SDPA-{name}"] = sdpa_backend(backend)
        try:
            from flash_attn import flash_attn_func
        except ImportError as exc:
            print(f"flash_attn: not measured ({exc})", file=sys.stderr)
        else:  # it takes (B, T, H, D)
            found["flash_attn"] = lambda q, k, v: flash_attn_func(
                q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                causal=True).transpose(1, 2)
    return found


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).abs().max() / b.float().abs().max()).item()


def check(impls: dict, shape, dtype, device) -> list[dict]:
    """Each implementation's output and gradients against float32 SDPA."""
    g = torch.Generator().manual_seed(0)
    base = [torch.randn(shape, generator=g).to(device) for _ in range(3)]
    grad = torch.randn(shape, generator=g).to(device)
    ref = [t.clone().requires_grad_() for t in base]
    expected = F.scaled_dot_product_attention(*ref, is_causal=True)
    expected.backward(grad)
    tol, rows = TOLERANCE[dtype], []
    for name, fn in impls.items():
        row = {"impl": name, "T": shape[2], "tolerance": tol}
        try:
            ours = [t.to(dtype, copy=True).requires_grad_() for t in base]
            out = fn(*ours)
            row["out_err"] = rel_err(out, expected)
            if name not in FORWARD_ONLY:
                out.backward(grad.to(dtype))
                row["grad_err"] = max(rel_err(a.grad, b.grad)
                                      for a, b in zip(ours, ref))
        except (RuntimeError, torch.OutOfMemoryError) as exc:  # no kernel for these
            row["status"] = "unavailable: " + str(exc).strip().splitlines()[0][:160]
            rows.append(row)
            continue
        worst = max(row["out_err"], row.get("grad_err", 0.0))
        row["status"] = "ok" if worst <= tol else "wrong"
        rows.append(row)
    return rows


def timed(fn, device: torch.device, repeats: int) -> float:
    """Fastest time of fn() in milliseconds over `repeats` runs, after two warm-ups."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(2):  # compilation, autotuning, allocator warm-up
        fn()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return 1e3 * min(times)


def measure(name, fn, shape, dtype, device, backward, repeats):
    """(forward ms, forward+backward ms or None) for one implementation and shape."""
    q, k, v = (torch.randn(shape, device=device, dtype=dtype,
                           requires_grad=backward) for _ in range(3))
    with torch.no_grad():
        fwd = timed(lambda: fn(q, k, v), device, repeats)
    if not backward or name in FORWARD_ONLY:
        return fwd, None
    grad = torch.randn(shape, device=device, dtype=dtype)

    def step():
        fn(q, k, v).backward(grad)
        q.grad = k.grad = v.grad = None

    return fwd, timed(step, device, repeats)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda "
                        "when available)")
    parser.add_argument("--seq-lens", type=int, nargs="+")
    parser.add_argument("--batch", type=int)
    parser.add_argument("--heads", type=int)
    parser.add_argument("--head-dim", type=int)
    parser.add_argument("--tile", type=int, default=256, help="tile of the tiled loop")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-backward", action="store_true")
    parser.add_argument("--backends", action="store_true",
                        help="also SDPA's backends one by one, and flash_attn")
    parser.add_argument("--impls", nargs="+", help="only these implementations")
    parser.add_argument("--check", type=int, metavar="T", default=None,
                        help="first check every implementation at length T against "
                        "float32 SDPA; time only those that pass")
    parser.add_argument("--quadratic-max-len", type=int, default=None, metavar="T",
                        help="time naive and SDPA-math (T x T scores) only up to T")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    cuda = torch.cuda.is_available()
    device = torch.device(args.device or ("cuda" if cuda else "cpu"))
    seq_lens, batch, heads, head_dim = DEFAULTS[device.type if cuda else "cpu"]
    seq_lens = args.seq_lens or seq_lens
    batch, heads = args.batch or batch, args.heads or heads
    head_dim = args.head_dim or head_dim
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    backward = not args.no_backward
    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"CPU, {torch.get_num_threads()} threads")
    print(f"causal attention on {where}; {str(dtype).removeprefix('torch.')}, "
          f"batch {batch}, {heads} heads of {head_dim}; fastest of {args.repeats}")
    print("ratio = time / SDPA's time at the same length (lower is faster)")

    interpreted = (device.type != "cuda" and "triton" in (args.impls or [])
                   and os.environ.get("TRITON_INTERPRET") == "1")
    impls = methods(device, args.tile, args.backends, interpreted)
    if args.impls:
        unknown = set(args.impls) - set(impls)
        if unknown:
            parser.error(f"--impls: {sorted(unknown)} not among {sorted(impls)}")
        impls = {k: v for k, v in impls.items() if k in args.impls or k == "SDPA"}
    checks = []
    if args.check:
        checks = check(impls, (batch, heads, args.check, head_dim), dtype, device)
        print(f"check at T = {args.check} against float32 SDPA (relative to the "
              f"largest value; tolerance {TOLERANCE[dtype]:g}):")
        for c in checks:
            errs = (f"out {c['out_err']:.1e}" + (f", grads {c['grad_err']:.1e}"
                                                 if "grad_err" in c else "")
                    if "out_err" in c else "")
            print(f"  {c['impl']:>10} {c['status']} {errs}")
        impls = {c["impl"]: impls[c["impl"]] for c in checks if c["status"] == "ok"}
        if "SDPA" not in impls:
            print("ERROR: SDPA itself failed its check: nothing to time against",
                  file=sys.stderr)
            return 1
    quadratic = {"naive", "SDPA-math"}
    rows, failed, stopped = [], set(), []  # stopped: where an implementation stopped
    header = f"{'T':>6} {'impl':>10} {'fwd ms':>9} {'fwd x':>7}"
    header += f" {'fwd+bwd ms':>11} {'fwd+bwd x':>10}" if backward else ""
    print(header)
    for T in seq_lens:
        shape = (batch, heads, T, head_dim)
        base = None
        for name, fn in impls.items():
            if name in failed or (name in quadratic and args.quadratic_max_len
                                  and T > args.quadratic_max_len):
                continue
            why = None
            try:
                fwd, both = measure(name, fn, shape, dtype, device, backward,
                                    args.repeats)
            except torch.OutOfMemoryError:
                why = "oom"
            except RuntimeError as exc:  # e.g. a backend with no kernel for T
                why = "error: " + str(exc).strip().splitlines()[0][:160]
            if why:  # outside `except`: its traceback no longer holds memory
                failed.add(name)
                stopped.append({"T": T, "impl": name, "why": why})
                print(f"{T:>6} {name:>10} {why}")
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            if name == "SDPA":
                base = (fwd, both)
            nan = float("nan")  # no SDPA time at this length: no ratio
            row = {"T": T, "impl": name, "fwd_ms": fwd, "fwd_bwd_ms": both,
                   "fwd_ratio": fwd / base[0] if base else nan,
                   "fwd_bwd_ratio": both / base[1] if both and base and base[1]
                   else None}
            rows.append(row)
            line = f"{T:>6} {name:>10} {fwd:>9.3f} {row['fwd_ratio']:>7.2f}"
            if backward:
                line += (f" {both:>11.3f} {row['fwd_bwd_ratio'] or nan:>10.2f}"
                         if both else f" {'-':>11} {'-':>10}")
            print(line, flush=True)
    if args.json:
        args.json.write_text(json.dumps({"device": where, "dtype": str(dtype),
                                         "batch": batch, "heads": heads,
                                         "head_dim": head_dim, "checks": checks,
                                         "rows": rows, "stopped": stopped}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
