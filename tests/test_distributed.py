"""Data parallelism (chapter 06): every method against one process, on 2 gloo
processes started by torchrun; the launch helpers' one-line errors; per-rank data.

The checks themselves live in tests/distributed_checks.py (a script: torchrun
needs a file); its docstring gives the tolerances and why.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from llm_from_scratch.parallel.launch import (LaunchError, init_distributed,
                                              launch_environment, rank_batch_size,
                                              zero_memory)
from llm_from_scratch.parallel.sharded import load_sharded, save_sharded

ROOT = Path(__file__).resolve().parent.parent
CHECKS = Path(__file__).with_name("distributed_checks.py")


def torchrun(*args: str, nproc: int = 2, timeout: float = 240,
             extra_env: dict | None = None) -> str:
    """Run distributed_checks.py on nproc processes; its output, or a failure."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DS_ACCELERATOR": "cpu",
           "OMP_NUM_THREADS": "1", **(extra_env or {})}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={nproc}", str(CHECKS), *args]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{args} failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    return r.stdout


def test_zero_memory_reproduces_the_zero_papers_example():
    # Rajbhandari et al. 2020, Figure 1: 7.5B parameters, 64 devices, K = 12.
    gb = [zero_memory(7.5e9, 64, stage)["total"] / 1e9 for stage in range(4)]
    assert [round(x, 1) for x in gb] == [120.0, 31.4, 16.6, 1.9]
    assert zero_memory(100, 4, 2) == {"weights": 200, "gradients": 50.0,
                                        "optimizer states": 300.0, "total": 550.0}


def test_ring_ddp_zero1_and_fsdp_match_one_process_on_two_gloo_ranks():
    out = torchrun("data_parallel")
    for name in ("naive", "bucketed", "ddp", "zero1", "fsdp", "fsdp-bf16"):
        assert f"[rank 0] {name}:" in out and f"[rank 1] {name}:" in out


def test_deepspeed_zero_stages_match_one_process_without_compiling(tmp_path):
    ext = tmp_path / "torch_extensions"  # an empty cache: a compile would show
    out = torchrun("deepspeed", extra_env={"TORCH_EXTENSIONS_DIR": str(ext)})
    for stage in (1, 2, 3):
        assert f"[rank 1] deepspeed-zero{stage}:" in out
    assert not ext.exists() or not any(ext.iterdir()), "DeepSpeed compiled an op"


def test_sharded_checkpoint_resumes_exactly_and_across_world_sizes(tmp_path):
    import distributed_checks as C

    torchrun("dcp", "save", str(tmp_path))
    out = torchrun("dcp", "ckpt-2proc", str(tmp_path))
    assert "resumed from ckpt-2proc: 0.00e+00" in out
    from safetensors.torch import load_file

    uninterrupted = load_file(tmp_path / "uninterrupted.st")
    batches = C.global_batches()
    model = C.make_model(seed=1)  # overwritten by the checkpoint
    optimizer = C.adamw(model)
    assert load_sharded(tmp_path / "ckpt-2proc", model, optimizer,
                          step=torch.tensor(0))["step"].item() == 2
    C.train(model, batches[2:], optimizer)
    assert C.max_diff(dict(model.named_parameters()), uninterrupted) <= C.ADAMW_TOL
    model = C.make_model()
    optimizer = C.adamw(model)
    C.train(model, batches[:2], optimizer)
    save_sharded(tmp_path / "ckpt-1proc", model, optimizer, step=torch.tensor(2))
    torchrun("dcp", "ckpt-1proc", str(tmp_path))


def test_rank_shares_are_disjoint_and_make_up_the_one_process_batch():
    from llm_from_scratch.data.batches import ShuffledBatches

    seqs = [(torch.tensor([i]), torch.tensor([i])) for i in range(40)]

    def stream(rank, world):
        return iter(ShuffledBatches(seqs, 8 // world, seed=1, rank=rank,
                                    world_size=world))
    one, shares = stream(0, 1), [stream(r, 4) for r in range(4)]
    for _ in range(10):  # two epochs
        full = next(one)[0].flatten().tolist()
        parts = [next(s)[0].flatten().tolist() for s in shares]
        assert sorted(sum(parts, [])) == sorted(full)
        assert len(set(sum(parts, []))) == 8


@pytest.mark.parametrize("env, message", [
    ({"WORLD_SIZE": "2", "RANK": "0"}, "MASTER_ADDR and MASTER_PORT unset"),
    ({"WORLD_SIZE": "2", "RANK": "2", "MASTER_ADDR": "x", "MASTER_PORT": "1"},
     "RANK=2 does not fit WORLD_SIZE=2"),
    ({"WORLD_SIZE": "two"}, "not a number"),
])
def test_a_broken_launch_environment_is_a_one_line_error(env, message):
    with pytest.raises(LaunchError, match=message) as info:
        launch_environment(env)
    assert "\n" not in str(info.value)


def test_more_ranks_than_sequences_or_an_uneven_split_is_a_one_line_error():
    assert rank_batch_size(16, 4) == 4
    with pytest.raises(LaunchError, match="launch at most 8 processes"):
        rank_batch_size(8, 16)
    with pytest.raises(LaunchError, match="multiple of 3"):
        rank_batch_size(8, 3)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_nccl_without_gpus_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "1")
    with pytest.raises(LaunchError, match="nccl backend needs CUDA GPUs"):
        init_distributed("nccl")
