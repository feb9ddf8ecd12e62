"""`llmfs train` under torchrun (chapter 06): data-parallel training of the smoke
profile's model on 2 gloo processes, a 2-node rendezvous on localhost, and the
one-line errors of launches that cannot work."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from llm_from_scratch.__main__ import main

ROOT = Path(__file__).resolve().parent.parent
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]
TWO = [*TORCHRUN, "--standalone", "--nproc_per_node=2"]  # 2 processes, 1 machine
STEPS = ["--max-steps", "3", "--eval-interval", "0", "--sample-steps",
         "--precision", "fp32"]


def llmfs_train(home: Path, data_dir: Path, *args: str, launcher=(), timeout=240):
    env = {**os.environ, "LLMFS_HOME": str(home), "LLMFS_DATA": str(data_dir),
           "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [*(launcher or [sys.executable]), "-m", "llm_from_scratch", "train",
           "--profile", "smoke", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def losses(run: Path) -> list[tuple[int, float]]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").open()]
    return [(r["tokens"], r["loss"]) for r in rows if "loss" in r]


@pytest.fixture(scope="module")
def one_process_run(tmp_path_factory, data_dir):
    home = tmp_path_factory.mktemp("home")
    r = llmfs_train(home, data_dir, *STEPS, "--out", str(home / "one"))
    assert r.returncode == 0, r.stderr[-2000:]
    return home


def test_torchrun_ddp_trains_on_the_global_batch_of_one_process(one_process_run,
                                                                 data_dir):
    home = one_process_run
    r = llmfs_train(home, data_dir, *STEPS, "--parallel", "ddp", "--out",
                    str(home / "two"), launcher=TWO)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.count("validation: loss") == 1  # rank 0 reports
    one, two = losses(home / "one"), losses(home / "two")
    # The same global batches: the same targets counted, and losses equal up to
    # the summation order of the two ranks' halves (float32 rounding, ~1e-7).
    assert [t for t, _ in one] == [t for t, _ in two] and len(one) == 3
    assert max(abs(a - b) for (_, a), (_, b) in zip(one, two)) <= 1e-5


def test_two_nodes_of_one_process_meet_through_a_rendezvous_on_localhost(
        tmp_path, data_dir):
    with socket.socket() as s:  # a free port for the rendezvous
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "LLMFS_HOME": str(tmp_path), "LLMFS_DATA": str(data_dir),
           "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    nodes = [subprocess.Popen(
        [*TORCHRUN, "--nnodes=2", f"--node_rank={rank}", "--nproc_per_node=1",
         "--rdzv_backend=c10d", f"--rdzv_endpoint=localhost:{port}", "--rdzv_id=t",
         "-m", "llm_from_scratch", "train", "--profile", "smoke", *STEPS,
         "--out", str(tmp_path / "run")], env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE) for rank in (0, 1)]
    outs = [node.communicate(timeout=240) for node in nodes]
    for node, (_, err) in zip(nodes, outs):
        assert node.returncode == 0, err[-2000:]
    assert sum(out.count("validation: loss") for out, _ in outs) == 1
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert json.loads((tmp_path / "run" / "run.json").read_text())["world_size"] == 2
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3]


def one_line_error(stderr: str) -> str:
    lines = [x for x in stderr.splitlines() if x.startswith("llmfs: error:")]
    assert lines, stderr[-2000:]
    return lines[0]


def test_a_batch_that_does_not_split_over_the_ranks_is_a_one_line_error(tmp_path,
                                                                        data_dir):
    r = llmfs_train(tmp_path, data_dir, *STEPS, "--batch-size", "5", "--out",
                    str(tmp_path / "run"),
                    launcher=TWO)
    assert r.returncode != 0
    assert "does not split evenly over 2 ranks" in one_line_error(r.stderr)


def test_resuming_a_run_of_another_world_size_is_a_one_line_error(one_process_run,
                                                                  data_dir):
    home = one_process_run
    r = llmfs_train(home, data_dir, *STEPS, "--max-steps", "4", "--out",
                    str(home / "one"), launcher=TWO)
    assert r.returncode != 0
    assert "world_size: 1 in the checkpoint, 2 now" in one_line_error(r.stderr)


def test_more_ranks_than_sequences_is_a_one_line_error(tmp_path, data_dir):
    r = llmfs_train(tmp_path, data_dir, *STEPS, "--batch-size", "1", "--out",
                    str(tmp_path / "run"),
                    launcher=TWO)
    assert r.returncode != 0
    assert "2 ranks cannot share a global batch of 1" in one_line_error(r.stderr)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has GPUs")
def test_nccl_without_gpus_is_a_one_line_error(capsys):
    assert main(["train", "--profile", "smoke", "--backend", "nccl"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "nccl backend needs CUDA GPUs" in err
