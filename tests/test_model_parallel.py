"""Model parallelism (chapter 07): tensor parallelism (by hand, DTensor, sequence
parallel), pipeline schedules (by hand and torch.distributed.pipelining) and
FSDP x TP, each against one process on gloo; the layout arithmetic; the errors.

The distributed checks live in tests/model_parallel_checks.py (torchrun needs a
file); its docstring gives the tolerances and why.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from llm_from_scratch.parallel.model_parallel import choose_layout
from llm_from_scratch.parallel.pipeline import stage_layers
from llm_from_scratch.parallel.tensor import bytes_sent, check_tp_degree
from llm_from_scratch.model.gpt import GPTConfig, swiglu_hidden

ROOT = Path(__file__).resolve().parent.parent
CHECKS = Path(__file__).with_name("model_parallel_checks.py")


def torchrun(check: str, nproc: int = 2, timeout: float = 300) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={nproc}", str(CHECKS), check]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{check} failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    return r.stdout


def test_tensor_parallel_by_hand_and_dtensor_match_one_process():
    out = torchrun("tp")
    for name in ("tp-scratch", "tp-dtensor", "tp-dtensor-sp"):
        assert f"[rank 0] {name}: ok" in out and f"[rank 1] {name}: ok" in out


def test_gpipe_1f1b_and_torch_pipelining_match_one_process():
    out = torchrun("pp")
    for name in ("gpipe", "1f1b", "ScheduleGPipe", "Schedule1F1B"):
        assert f"[rank 0] pp-{name}: ok" in out and f"[rank 1] pp-{name}: ok" in out


def test_fsdp_times_tp_mesh_matches_one_process_on_four_ranks():
    out = torchrun("mesh", nproc=4)
    assert all(f"[rank {r}] mesh-fsdp-tp: ok" in out for r in range(4))


def test_bad_degrees_are_one_line_errors():
    c = GPTConfig(vocab_size=96, n_layers=4, n_heads=4, n_kv_heads=2, d_model=32,
                  context_len=16)
    with pytest.raises(ValueError, match="key/value heads divisible by 4"):
        check_tp_degree(c, 4)
    with pytest.raises(ValueError, match="5 pipeline stages for 4 layers"):
        stage_layers(4, 5)
    assert stage_layers(5, 2) == [range(0, 3), range(3, 5)]


def test_layout_rule_reproduces_megatron_lms_1t_layout():
    # Narayanan et al. 2021: 1T parameters, 3,072 A100s of 80 GB, t = 8, p = 64,
    # batch 3,072 of 2,048 tokens, optimizer states not sharded.
    c = GPTConfig(vocab_size=51200, n_layers=128, n_heads=160, d_model=25600,
                  context_len=2048, ffn_hidden=swiglu_hidden(25600))
    lay = choose_layout(c, 3072, 2048, 3072, shard_optimizer=False)
    assert (lay.dp, lay.tp, lay.pp) == (6, 8, 64)
    assert lay.bubble == pytest.approx(63 / (512 + 63))
    assert bytes_sent("all_reduce", 100, 4) == 150
