"""Run by tests/test_model_parallel.py under torchrun (gloo): tensor and pipeline
parallelism, and FSDP x TP, each against one process on the same global batches.
Usage: model_parallel_checks.py tp|pp|mesh.

Tolerances (float32): a sharded layer adds the same products grouped otherwise,
a few units of eps = 1.2e-7 on values of order one: logits within 1e-5,
gradients within 1e-6, weights after SGD steps within 1e-6 (chapter 06's SGD
tolerance); a run without the backward all-reduce of f misses by > 1e-4.
"""

from __future__ import annotations

import sys

import torch
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.pipelining import Schedule1F1B, ScheduleGPipe

from llm_from_scratch.parallel.pipeline import (gpipe, lm_loss, one_f_one_b,
                                                pipeline_stage, split_stages, sync_tied,
                                                tie_group)
from llm_from_scratch.parallel.tensor import TP_COMM, CommCount, apply_tp, shard_tp
from llm_from_scratch.parallel.launch import close_distributed, init_distributed
from llm_from_scratch.parallel.sharded import apply_fsdp
from llm_from_scratch.model.gpt import GPT, GPTConfig

LOGITS_TOL, GRAD_TOL, SGD_TOL, LR, BATCH, STEPS = 1e-5, 1e-6, 1e-6, 0.5, 8, 3
CONFIG = GPTConfig(vocab_size=96, n_layers=4, n_heads=4, n_kv_heads=2, d_model=32,
                   context_len=16)
torch.set_num_threads(1)


def make_model() -> GPT:
    torch.manual_seed(0)
    return GPT(CONFIG)


def batches() -> list:
    g = torch.Generator().manual_seed(1234)
    seqs = [torch.randint(0, CONFIG.vocab_size, (BATCH, CONFIG.context_len + 1),
                          generator=g) for _ in range(STEPS)]
    return [(s[:, :-1], s[:, 1:]) for s in seqs]


def sgd_train(model, params, step, rows=slice(None), after=None) -> None:
    opt = torch.optim.SGD(params, lr=LR, foreach=False)
    for x, y in batches():
        step(model, x[rows], y[rows])
        if after:
            after()
        opt.step()
        opt.zero_grad()


def plain_step(model, x, y):
    model(x, y)[1].backward()


def reference() -> dict:
    model = make_model()
    sgd_train(model, model.parameters(), plain_step)
    return {k: p.detach() for k, p in model.named_parameters()}


def block_of(full, local, rank, n):
    for dim in range(full.dim()):
        if full.shape[dim] != local.shape[dim]:
            return full.chunk(n, dim=dim)[rank]
    return full


def full(t):
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def check_tp(rank, n):
    x, y = batches()[0]
    ref_model = make_model()
    logits, loss = ref_model(x, y)
    loss.backward()
    grads = {k: p.grad for k, p in ref_model.named_parameters()}
    ref = reference()
    hand = shard_tp(make_model())
    TP_COMM.update(all_reduce=0, bytes=0)
    out, tp_loss = hand(x, y)
    assert TP_COMM["all_reduce"] == 2 * CONFIG.n_layers  # one per sub-layer
    tp_loss.backward()
    assert TP_COMM["all_reduce"] == 4 * CONFIG.n_layers
    assert (out - logits).abs().max() < LOGITS_TOL
    assert max((p.grad - block_of(grads[k], p, rank, n)).abs().max()
               for k, p in hand.named_parameters()) < GRAD_TOL
    hand = shard_tp(make_model())
    sgd_train(hand, hand.parameters(), plain_step)
    assert max((p - block_of(ref[k], p, rank, n)).abs().max()
               for k, p in hand.named_parameters()) < SGD_TOL
    print(f"[rank {rank}] tp-scratch: ok")
    mesh = init_device_mesh("cpu", (n,))
    for sp in (False, True):
        model = apply_tp(make_model(), mesh, sequence_parallel=sp)
        with CommCount() as count:
            out = model(x, y)[0]
        assert (out - logits).abs().max() < LOGITS_TOL
        kinds = {"all_reduce"} if not sp else {"all_gather_into_tensor",
                                              "reduce_scatter_tensor"}
        assert set(count.calls) == kinds, count.calls
        sgd_train(model, model.parameters(), plain_step)
        assert max((full(p) - ref[k]).abs().max()
                   for k, p in model.named_parameters()) < SGD_TOL
        print(f"[rank {rank}] tp-dtensor{'-sp' if sp else ''}: ok")


def check_pp(rank, p, m=4):
    ref = reference()
    shape = (BATCH // m, CONFIG.context_len, CONFIG.d_model)
    for name in ("gpipe", "1f1b", "ScheduleGPipe", "Schedule1F1B"):
        model = make_model()  # tied embeddings: first and last stage share it
        stage, ties = split_stages(model, p)[rank], tie_group(model, p)
        if name in ("gpipe", "1f1b"):
            run = gpipe if name == "gpipe" else one_f_one_b
            logs = []

            def step(_, x, y):
                logs.append(run(stage, list(x.chunk(m)), list(y.chunk(m)), shape))
        else:
            kind = ScheduleGPipe if name == "ScheduleGPipe" else Schedule1F1B
            schedule = kind(pipeline_stage(stage), n_microbatches=m,
                            loss_fn=lm_loss)

            def step(_, x, y):
                schedule.step(x) if stage.first else schedule.step(target=y)
        sgd_train(model, stage.parameters(), step,
                  after=lambda: sync_tied(stage, ties))
        mine = {id(q) for q in stage.parameters()}
        assert max((q - ref[k]).abs().max() for k, q in model.named_parameters()
                   if id(q) in mine) < SGD_TOL
        if name == "gpipe":
            assert logs[-1].peak_held == m
        if name == "1f1b":
            assert logs[-1].peak_held == min(p - rank, m)
        print(f"[rank {rank}] pp-{name}: ok")


def check_mesh(rank, n):
    mesh = init_device_mesh("cpu", (2, n // 2), mesh_dim_names=("dp", "tp"))
    model = make_model()
    apply_tp(model, mesh["tp"], sequence_parallel=True)
    apply_fsdp(model, mesh=mesh["dp"])
    d, share = mesh["dp"].get_local_rank(), BATCH // 2
    sgd_train(model, model.parameters(), plain_step,
              rows=slice(d * share, (d + 1) * share))
    ref = reference()
    assert max((p.full_tensor() - ref[k]).abs().max()
               for k, p in model.named_parameters()) < SGD_TOL
    print(f"[rank {rank}] mesh-fsdp-tp: ok")


if __name__ == "__main__":
    launch = init_distributed(timeout_s=120)
    {"tp": check_tp, "pp": check_pp, "mesh": check_mesh}[sys.argv[1]](
        launch.rank, launch.world_size)
    close_distributed()
