"""Our AdamW against torch.optim.AdamW(foreach=True): one optimizer step's time.

    python benchmarks/adamw.py                 # the cpu profile's model
    python benchmarks/adamw.py --profile gpu

Builds the profile's model (``GPTConfig.from_profile``, vocabulary size from chapter
01's profile section) three times with the same weights and the same fixed random
gradients, with the training loop's parameter groups (matrices decay, vectors do
not): one copy for ``llm_from_scratch.training.optim.AdamW`` (foreach operations), one for
``torch.optim.AdamW(foreach=True)``, and, for scale, one for
``torch.optim.AdamW(foreach=False)`` (a loop over the tensors). It checks that the
first steps agree, then times the steps round after round, in alternating order, so
that all see the same load on the machine; each time is the fastest of its rounds,
with the median beside it.

Prints milliseconds per step and ``speed-up = torch's time / ours`` (above 1: ours
is faster).
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout

from llm_from_scratch.model.gpt import GPT, GPTConfig  # noqa: E402
from llm_from_scratch.training.optim import AdamW, param_groups  # noqa: E402
from llm_from_scratch.config.profiles import get_profile  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu", help="whose model (default cpu)")
    parser.add_argument("--device", default=None, help="default: cuda if available")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available()
                                          else "cpu"))
    P = get_profile(args.profile)
    loop = P.train.loop
    torch.manual_seed(0)
    base = GPT(GPTConfig.from_profile(P.model, P.data.vocab_size)).to(device)
    g = torch.Generator(device=device).manual_seed(1)
    grads = [torch.randn(p.shape, device=device, generator=g) * 1e-2
             for p in base.parameters()]
    kinds = {
        "ours (foreach)": lambda groups: AdamW(groups, lr=loop.lr, betas=loop.betas),
        "torch foreach": lambda groups: torch.optim.AdamW(
            groups, lr=loop.lr, betas=loop.betas, foreach=True),
        "torch for-loop": lambda groups: torch.optim.AdamW(
            groups, lr=loop.lr, betas=loop.betas, foreach=False),
    }
    models, optims = {}, {}
    for name, make in kinds.items():
        models[name] = copy.deepcopy(base)
        for p, grad in zip(models[name].parameters(), grads):
            p.grad = grad.clone()
        optims[name] = make(param_groups(models[name], loop.weight_decay))
    for _ in range(3):  # warm-up, and the same three steps for the check
        for opt in optims.values():
            opt.step()
    ref = list(models["torch foreach"].parameters())
    diff = max((a - b).abs().max().item()
               for a, b in zip(models["ours (foreach)"].parameters(), ref))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times = {name: [] for name in kinds}
    order = list(optims.items())
    for _ in range(args.rounds):
        order.reverse()  # none always runs first
        for name, opt in order:
            sync()
            start = time.perf_counter()
            opt.step()
            sync()
            times[name].append(time.perf_counter() - start)
    best = {k: min(v) for k, v in times.items()}
    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"CPU, {torch.get_num_threads()} threads")
    n = sum(p.numel() for p in base.parameters())
    print(f"model of profile {args.profile!r}: {n:,} parameters in "
          f"{len(grads)} tensors; {where}; torch {torch.__version__}")
    print(f"after 3 steps: max |ours - torch foreach| = {diff:.2e}")
    print(f"one AdamW step, {args.rounds} alternating rounds (fastest, median):")
    for name, t in times.items():
        print(f"  {name:15} {best[name] * 1e3:8.3f} ms  "
              f"{statistics.median(t) * 1e3:8.3f} ms")
    ours = best["ours (foreach)"]
    print(f"speed-up = torch foreach / ours: {best['torch foreach'] / ours:.2f}x; "
          f"torch for-loop / ours: {best['torch for-loop'] / ours:.2f}x")
    print("load average (1, 5, 15 min): "
          + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
