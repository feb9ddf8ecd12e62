"""Run by tests/test_distributed.py under torchrun (2 gloo processes): each check
trains a small model the data-parallel way and asserts that it ends where one
process ends on the same global batches. Usage: distributed_checks.py CHECK [ARG].

Tolerances: SGD in fp32 carries the rounding of a different summation order
(about 1e-7 relative in a gradient) through unchanged: 1e-6 after 5 steps, and a
run without gradient averaging misses by more than 1e-3. AdamW amplifies
last-bit differences of tiny gradients, so it is compared bit for bit where the
arithmetic is the same (ZeRO-1 vs unsharded AdamW on the same gradients, an
exact resume) and within 1e-4 (a tenth of its 1e-3 learning rate, the
scale at which a wrong gradient moves a weight per step) against one process.
"""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import (StateDictOptions,
                                                     get_model_state_dict)

from llm_from_scratch.parallel.ddp import (GradientBuckets, all_reduce_gradients,
                                           apply_ddp, broadcast_parameters,
                                           ring_all_reduce)
from llm_from_scratch.parallel.launch import close_distributed, init_distributed
from llm_from_scratch.parallel.sharded import (ZeRO1, apply_deepspeed, apply_fsdp,
                                               deepspeed_config, load_sharded,
                                               save_sharded)
from llm_from_scratch.model.gpt import GPT, GPTConfig
from llm_from_scratch.training.optim import AdamW, param_groups

SGD_TOL, ADAMW_TOL = 1e-6, 1e-4
CONFIG = GPTConfig(vocab_size=96, n_layers=2, n_heads=4, n_kv_heads=2, d_model=32,
                   context_len=16)
BATCH, STEPS = 8, 5
torch.set_num_threads(1)


def share(batches: list, rank: int, n: int) -> list:
    """Rank's rows of every global batch: rank * b to (rank + 1) * b."""
    b = BATCH // n
    return [(x[rank * b:(rank + 1) * b], y[rank * b:(rank + 1) * b])
            for x, y in batches]


def make_model(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(CONFIG)


def global_batches() -> list:
    g = torch.Generator().manual_seed(1234)
    seqs = [torch.randint(0, CONFIG.vocab_size, (BATCH, CONFIG.context_len + 1),
                          generator=g) for _ in range(STEPS)]
    return [(s[:, :-1], s[:, 1:]) for s in seqs]


def sgd(model):
    return torch.optim.SGD(model.parameters(), lr=0.5)


def adamw(model):
    return AdamW(param_groups(model, 0.1), lr=1e-3)


def train(model, batches, optimizer, after_backward=None):
    for x, y in batches:
        model(x, y)[1].backward()
        if after_backward is not None:
            after_backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def reference(make_optimizer) -> dict:
    model = make_model()
    train(model, global_batches(), make_optimizer(model))
    return dict(model.named_parameters())


def max_diff(weights: dict, ref: dict) -> float:
    return max((weights[k].detach().float() - ref[k].detach()).abs().max().item()
               for k in ref)


def full_weights(model) -> dict:
    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True))


def check(name: str, weights: dict, ref: dict, tol: float) -> None:
    diff = max_diff(weights, ref)
    print(f"[rank {dist.get_rank()}] {name}: {diff:.2e} (tolerance {tol:.0e})",
          flush=True)
    assert diff <= tol, f"{name} differs from one process by {diff:.2e} > {tol:.0e}"


def replica() -> GPT:
    model = make_model(seed=dist.get_rank())  # different until broadcast
    broadcast_parameters(model)
    return model


def data_parallel(rank: int, n: int) -> None:
    batches = share(global_batches(), rank, n)
    ref_sgd, ref_adamw = reference(sgd), reference(adamw)
    t = torch.randn(1000, generator=torch.Generator().manual_seed(rank))
    ours, theirs = t.clone(), t.clone()
    sent = ring_all_reduce(ours)
    dist.all_reduce(theirs)
    # Two addends: IEEE addition commutes, so the ring and gloo agree bit for bit.
    assert torch.equal(ours, theirs) if n == 2 else torch.allclose(ours, theirs)
    assert sent == 2 * (n - 1) * t.numel() * 4 // n, sent

    model = make_model()
    train(model, batches, sgd(model))  # the control: no gradient averaging
    assert max_diff(dict(model.named_parameters()), ref_sgd) > 1e-3

    model = replica()
    train(model, batches, sgd(model), lambda: all_reduce_gradients(model))
    check("naive", dict(model.named_parameters()), ref_sgd, SGD_TOL)
    model = replica()
    buckets = GradientBuckets(model, bucket_bytes=16 * 1024)
    assert len(buckets.buckets) > 1
    train(model, batches, sgd(model), buckets.wait)
    check("bucketed", dict(model.named_parameters()), ref_sgd, SGD_TOL)
    model = make_model(seed=rank)
    train(apply_ddp(model), batches, sgd(model))
    check("ddp", dict(model.named_parameters()), ref_sgd, SGD_TOL)

    model, plain = replica(), replica()
    zero = ZeRO1(param_groups(model, 0.1), lambda g: AdamW(g, lr=1e-3))
    train(model, batches, zero, lambda: all_reduce_gradients(model))
    plain_opt = adamw(plain)
    train(plain, batches, plain_opt, lambda: all_reduce_gradients(plain))
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(),
                                                 plain.parameters()))
    full, want = zero.state_dict(), plain_opt.state_dict()
    assert sorted(full["state"]) == sorted(want["state"])
    assert all(torch.equal(full["state"][i][k], s[k]) for i, s in want["state"].items()
               for k in s)
    check("zero1", dict(model.named_parameters()), ref_adamw, ADAMW_TOL)

    model = apply_fsdp(replica())
    train(model, batches, sgd(model))
    check("fsdp", full_weights(model), ref_sgd, SGD_TOL)
    model = apply_fsdp(replica(), param_dtype=torch.bfloat16,
                         reduce_dtype=torch.float32)
    train(model, batches, sgd(model))
    moved = max_diff(dict(make_model().named_parameters()), ref_sgd)
    check("fsdp-bf16", full_weights(model), ref_sgd, moved * 2**-4)


def deepspeed_stages(rank: int, n: int) -> None:
    import contextlib

    import deepspeed

    batches = share(global_batches(), rank, n)
    ref_sgd = reference(sgd)
    for stage in (1, 2, 3):
        model = make_model()
        config = deepspeed_config(stage, micro_batch=BATCH // n, world_size=n)
        engine = apply_deepspeed(model, sgd(model), config)
        for x, y in batches:
            engine.backward(engine(x, y)[1])
            engine.step()
        params = list(engine.module.parameters())
        with (deepspeed.zero.GatheredParameters(params) if stage == 3
              else contextlib.nullcontext()):
            weights = {k: v.detach().clone()
                       for k, v in engine.module.named_parameters()}
        check(f"deepspeed-zero{stage}", weights, ref_sgd, SGD_TOL)


def dcp(rank: int, n: int, mode: str, folder: str) -> None:
    """FSDP2 + AdamW and sharded checkpoints. ``save``: train 2 steps, write
    folder/ckpt-2proc, train the remaining steps, keep the weights (rank 0);
    ``resume CKPT``: load folder/CKPT (written by any world size), train the
    remaining steps, compare: exactly for a 2-process checkpoint, within AdamW's
    tolerance for one written by another world size."""
    from safetensors.torch import load_file, save_file

    batches = share(global_batches(), rank, n)
    model = apply_fsdp(replica())
    optimizer = adamw(model)
    if mode == "save":
        train(model, batches[:2], optimizer)
        save_sharded(os.path.join(folder, "ckpt-2proc"), model, optimizer,
                       step=torch.tensor(2))
    else:
        state = load_sharded(os.path.join(folder, mode), model, optimizer,
                               step=torch.tensor(0))
        assert state["step"].item() == 2
    train(model, batches[2:], optimizer)
    weights = {k: v.contiguous() for k, v in full_weights(model).items()
               if k != "lm_head.weight"}  # tied to the embedding
    result = os.path.join(folder, "uninterrupted.st")
    if mode == "save":
        if rank == 0:
            save_file(weights, result)
        return
    ref = load_file(result)
    check(f"resumed from {mode}", weights, ref,
          0.0 if mode == "ckpt-2proc" else ADAMW_TOL)


if __name__ == "__main__":
    launch = init_distributed()
    try:
        {"data_parallel": data_parallel, "deepspeed": deepspeed_stages,
         "dcp": dcp}[sys.argv[1]](launch.rank, launch.world_size, *sys.argv[2:])
    finally:
        close_distributed()
