"""`llmfs train` under torchrun and DeepSpeed's launcher (chapter 06): the smoke
profile's model trained by every --parallel method on 2 gloo processes to the
losses of one process, checkpoints that move between 1 and 2 processes, a 2-node
rendezvous on localhost, and the one-line errors of launches that cannot work."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from llm_from_scratch.parallel.data_parallel import deepspeed_run_config
from llm_from_scratch.parallel.launch import LaunchError
from llm_from_scratch.__main__ import main

ROOT = Path(__file__).resolve().parent.parent
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]
TWO = [*TORCHRUN, "--standalone", "--nproc_per_node=2"]  # 2 processes, 1 machine
STEPS = ["--max-steps", "3", "--eval-interval", "0", "--sample-steps",
         "--precision", "fp32"]


def llmfs_train(home: Path, data_dir: Path, *args: str, launcher=(), timeout=240,
                env=None, module=("-m", "llm_from_scratch")):
    env = {**os.environ, "LLMFS_HOME": str(home), "LLMFS_DATA": str(data_dir),
           "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **(env or {})}
    cmd = [*(launcher or [sys.executable]), *module, "train", "--profile", "smoke",
           *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def losses(run: Path) -> list[tuple[int, float]]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").open()]
    return [(r["tokens"], r["loss"]) for r in rows if "loss" in r]


@pytest.fixture(scope="module")
def one_process_run(tmp_path_factory, data_dir):
    """3 steps of a 4-step run in one process (warmup lasts 10 steps, so the
    learning rates of those 3 are the 3-step run's)."""
    home = tmp_path_factory.mktemp("home")
    r = llmfs_train(home, data_dir, *STEPS, "--max-steps", "4", "--stop-at-step", "3",
                    "--out", str(home / "one"))
    assert r.returncode == 0, r.stderr[-2000:]
    return home


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def same_losses(one: list, two: list, steps: int = 3) -> None:
    # The same global batches: the same targets counted, and losses equal up to
    # the summation order of the two ranks' halves (float32 rounding, ~1e-7).
    assert [t for t, _ in one[:steps]] == [t for t, _ in two[:steps]]
    assert len(two) >= steps
    assert max(abs(a - b) for (_, a), (_, b) in zip(one[:steps], two)) <= 1e-5


@pytest.mark.parametrize("method", ["ddp", "zero1"])
def test_torchrun_trains_on_the_global_batch_of_one_process(one_process_run, data_dir,
                                                            method):
    home = one_process_run
    r = llmfs_train(home, data_dir, *STEPS, "--parallel", method, "--out",
                    str(home / method), launcher=TWO)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.count("validation: loss") == 1  # rank 0 reports
    same_losses(losses(home / "one"), losses(home / method))


def test_deepspeed_launcher_trains_on_the_global_batch_of_one_process(
        one_process_run, data_dir, tmp_path):
    home, ext = one_process_run, tmp_path / "torch_extensions"  # a compile would show
    launcher = [sys.executable, "-m", "deepspeed.launcher.runner",
                "--num_accelerators", "2", "--master_port", str(free_port()),
                "--module", "llm_from_scratch"]
    env = {"DS_ACCELERATOR": "cpu", "TORCH_EXTENSIONS_DIR": str(ext)}
    r = llmfs_train(home, data_dir, *STEPS, "--parallel", "deepspeed", "--out",
                    str(home / "ds"), launcher=launcher, env=env, module=())
    assert r.returncode == 0, r.stderr[-2000:]
    same_losses(losses(home / "one"), losses(home / "ds"))
    assert not ext.exists() or not any(ext.iterdir()), "DeepSpeed compiled an op"


def test_checkpoints_move_between_one_and_two_processes(one_process_run, data_dir):
    """FSDP's 2-process checkpoint resumes in 1 process and loads in generate; the
    1-process checkpoint resumes in 2 processes with ZeRO-1; both reach step 4."""
    home = one_process_run
    shutil.copytree(home / "one", home / "one-to-two")
    r = llmfs_train(home, data_dir, *STEPS, "--max-steps", "4", "--stop-at-step", "3",
                    "--parallel", "fsdp", "--out", str(home / "two-to-one"),
                    launcher=TWO)
    assert r.returncode == 0, r.stderr[-2000:]
    same_losses(losses(home / "one"), losses(home / "two-to-one"))
    r = llmfs_train(home, data_dir, *STEPS, "--max-steps", "4", "--out",
                    str(home / "two-to-one"))
    assert r.returncode == 0 and "resumed from step 3" in r.stdout, r.stderr[-2000:]
    r = llmfs_train(home, data_dir, *STEPS, "--max-steps", "4", "--parallel", "zero1",
                    "--out", str(home / "one-to-two"), launcher=TWO)
    assert r.returncode == 0 and "resumed from step 3" in r.stdout, r.stderr[-2000:]
    a, b = losses(home / "two-to-one"), losses(home / "one-to-two")
    assert len(a) == len(b) == 4 and abs(a[3][1] - b[3][1]) <= 1e-5
    env = {**os.environ, "LLMFS_HOME": str(home), "PYTHONPATH": str(ROOT)}
    g = subprocess.run([sys.executable, "-m", "llm_from_scratch", "generate",
                        "--profile", "smoke", "--model", str(home / "two-to-one"),
                        "--prompt", "Once upon a time", "--max-new-tokens", "4",
                        "--greedy"], env=env, capture_output=True, text=True,
                       timeout=120)
    assert g.returncode == 0 and g.stdout.startswith("Once upon a time"), g.stderr


def test_two_nodes_of_one_process_meet_through_a_rendezvous_on_localhost(
        tmp_path, data_dir):
    port = free_port()  # for the rendezvous
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


def test_a_deepspeed_config_that_contradicts_the_run_is_a_one_line_error(tmp_path):
    config = tmp_path / "ds.json"
    config.write_text('{"zero_optimization": {"stage": 2}, "gradient_clipping": 0.5}')
    with pytest.raises(LaunchError, match="gradient_clipping to 0.5 and the run"):
        deepspeed_run_config(json.loads(config.read_text()), 4, 2, 2, 1.0)
    assert deepspeed_run_config(None, 4, 2, 2, 1.0)["train_batch_size"] == 16
    assert main(["train", "--profile", "smoke", "--deepspeed-config",
                 str(config)]) == 2  # without --parallel deepspeed


def test_a_resume_with_per_rank_data_positions_under_another_world_size_fails():
    from llm_from_scratch.io.checkpoint import CheckpointMismatchError
    from llm_from_scratch.training.distributed import data_position

    shuffled = {"data": {"epoch": 0, "index": 16}, "consumed": 4}
    assert data_position([shuffled] * 2, 0, 1) == shuffled  # global: shared out
    assert data_position([{"consumed": 3}, {"consumed": 5}], 1, 2) == {"consumed": 5}
    with pytest.raises(CheckpointMismatchError, match="resume it with 2 processes"):
        data_position([{"consumed": 4}, {"consumed": 4}], 0, 1)  # counts, per rank


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
