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
- ``triton``: ``kernels.flash.flash_attention``, on CUDA only. Interpreted on a CPU it
  runs in NumPy and its time says nothing about the kernel, so it is left out there.

On CUDA the inputs are bfloat16, on a CPU float32. An implementation that runs out of
memory at some length is reported as ``oom`` there and skipped at longer lengths.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout

from llm_from_scratch.attention import naive_attention  # noqa: E402
from llm_from_scratch.kernels.tiled import tiled_attention  # noqa: E402

DEFAULTS = {  # device type -> (sequence lengths, batch, heads, head dim)
    "cuda": ((512, 1024, 2048, 4096, 8192, 16384), 4, 16, 64),
    "cpu": ((256, 512, 1024, 2048), 1, 8, 64),
}


def methods(device: torch.device, tile: int) -> dict:
    found = {
        "SDPA": lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
        "naive": lambda q, k, v: naive_attention(q, k, v, causal=True),
        "tiled": lambda q, k, v: tiled_attention(q, k, v, True, tile),
    }
    if device.type == "cuda":
        try:
            from llm_from_scratch.kernels.flash import flash_attention
        except ImportError as exc:  # triton missing: say so, measure the rest
            print(f"triton: not measured ({exc})", file=sys.stderr)
        else:
            found["triton"] = lambda q, k, v: flash_attention(q, k, v, causal=True)
    return found


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
    if not backward or name == "tiled":
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

    impls = methods(device, args.tile)
    rows, failed = [], set()
    header = f"{'T':>6} {'impl':>7} {'fwd ms':>9} {'fwd x':>7}"
    header += f" {'fwd+bwd ms':>11} {'fwd+bwd x':>10}" if backward else ""
    print(header)
    for T in seq_lens:
        shape = (batch, heads, T, head_dim)
        base = None
        for name, fn in impls.items():
            if name in failed:
                continue
            try:
                fwd, both = measure(name, fn, shape, dtype, device, backward,
                                    args.repeats)
            except torch.OutOfMemoryError:
                failed.add(name)
            if name in failed:  # outside `except`: its traceback no longer holds memory
                print(f"{T:>6} {name:>7} {'oom':>9}")
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
            line = f"{T:>6} {name:>7} {fwd:>9.3f} {row['fwd_ratio']:>7.2f}"
            if backward:
                line += (f" {both:>11.3f} {row['fwd_bwd_ratio'] or nan:>10.2f}"
                         if both else f" {'-':>11} {'-':>10}")
            print(line, flush=True)
    if args.json:
        args.json.write_text(json.dumps({"device": where, "dtype": str(dtype),
                                         "batch": batch, "heads": heads,
                                         "head_dim": head_dim, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
