"""`llmfs train --tp 2` and `--pp 2` (chapter 07) under torchrun on 2 gloo processes:
the smoke profile's model stopped at step 2, resumed and trained to the losses of
one process, its checkpoint and export read by one process; and the one-line
errors of layouts that cannot work, before any work."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from test_distributed_cli import TWO, llmfs_train, losses

from llm_from_scratch.__main__ import main
from llm_from_scratch.parallel.launch import LaunchError
from llm_from_scratch.model.gpt import GPTConfig
from llm_from_scratch.parallel.model_parallel import check_layout

STEPS = ["--max-steps", "3", "--eval-interval", "0", "--sample-steps",
         "--precision", "fp32"]
# Step 1's loss is the initial model's on the same batch: the split only reorders
# float32 sums (TP's all-reduces, the tied embedding's two gradients), ~1e-7.
FIRST_TOL = 1e-5
# Steps 2 and 3 follow AdamW updates from gradients that differ by that rounding,
# which AdamW's division by sqrt(v) amplifies (chapter 06, section 5): measured
# 5e-7 at step 3 (and 6e-8 on the final validation loss). 1e-4 leaves that room
# 200 times over and is still a 280th of step 3's fall of the loss (0.028), so a
# step trained on other data, or not at all, fails it.
LATER_TOL = 1e-4


@pytest.fixture(scope="module")
def home(tmp_path_factory, data_dir):
    """One process's 3-step run; its tokenizer and shards serve the other runs."""
    home = tmp_path_factory.mktemp("home")
    r = llmfs_train(home, data_dir, *STEPS, "--out", str(home / "one"))
    assert r.returncode == 0, r.stderr[-2000:]
    return home


def final_loss(run) -> float:
    return json.loads((run / "final.json").read_text())["loss"]


@pytest.mark.parametrize("flag", ["--tp", "--pp"])
def test_two_ranks_stop_resume_and_train_to_the_losses_of_one_process(
        home, data_dir, flag):
    """Stopped at step 2 and resumed to 3, the run must still match one process:
    step 3 starts from the checkpoint, so it is where a lost state would show."""
    from llm_from_scratch.model.hf import load_hf
    from llm_from_scratch.inference.load import load_run

    shutil.rmtree(home / "smoke" / "pretrained", ignore_errors=True)  # ours, then
    run = home / flag[2:]
    r = llmfs_train(home, data_dir, *STEPS, flag, "2", "--stop-at-step", "2",
                    "--out", str(run), launcher=TWO, timeout=600)
    assert r.returncode == 0 and "stopped (stop_at_step) at step 2" in r.stdout, \
        r.stderr[-2000:]
    stopped = losses(run)
    r = llmfs_train(home, data_dir, *STEPS, flag, "2", "--out", str(run),
                    launcher=TWO, timeout=600)
    assert r.returncode == 0 and "resumed from step 2" in r.stdout, r.stderr[-2000:]
    assert r.stdout.count("validation: loss") == 1  # rank 0 reports
    one, two = losses(home / "one"), losses(run)
    assert two[:2] == stopped  # the resumed run appends, and keeps what it had
    # the same targets counted: the ranks of a group read one batch, counted once
    assert [t for t, _ in one] == [t for t, _ in two] and len(two) == 3
    assert abs(one[0][1] - two[0][1]) <= FIRST_TOL
    assert max(abs(a - b) for (_, a), (_, b) in zip(one, two)) <= LATER_TOL
    assert abs(final_loss(home / "one") - final_loss(run)) <= LATER_TOL
    # the checkpoint holds the whole model, which one process loads; so does the
    # Hugging Face export, with the same weights
    model, _, _ = load_run(run)
    exported = load_hf(home / "smoke" / "pretrained")
    ours = model.state_dict()
    assert all(torch.equal(v, ours[k]) for k, v in exported.state_dict().items())


SMOKE = GPTConfig(vocab_size=512, n_layers=2, n_heads=4, n_kv_heads=2, d_model=64,
                  context_len=64)


@pytest.mark.parametrize("world, tp, pp, method, message", [
    (1, 2, 1, None, "launch it with torchrun --nproc_per_node=2"),
    (3, 2, 1, None, "--tp 2 does not divide the 3 processes"),
    (4, 4, 1, None, "key/value heads divisible by 4, and the model has 2"),
    (3, 3, 1, None, "query heads divisible by 3"),
    (3, 1, 3, None, "3 pipeline stages for 2 layers"),
    (4, 2, 1, None, "leaves 2 data-parallel ranks: add --parallel fsdp"),
    (2, 2, 1, "deepspeed", "--parallel fsdp only, not deepspeed"),
    (2, 1, 2, "ddp", "--pp runs on its own"),
    (4, 2, 2, None, "--tp and --pp together are not supported"),
])
def test_a_layout_that_cannot_work_is_a_one_line_error(world, tp, pp, method,
                                                         message):
    with pytest.raises(LaunchError, match=message) as info:
        check_layout(SMOKE, world, tp, pp, method)
    assert "\n" not in str(info.value)


def test_the_layouts_that_work_give_the_data_parallel_size():
    assert check_layout(SMOKE, 4, tp=2, method="fsdp") == 2
    assert check_layout(SMOKE, 2, tp=2) == 1 and check_layout(SMOKE, 2, pp=2) == 1
    assert check_layout(SMOKE, 2) == 2  # chapter 06's data parallelism


def test_llmfs_train_refuses_a_bad_layout_before_any_work(monkeypatch, capsys,
                                                          tmp_path):
    monkeypatch.setenv("LLMFS_HOME", str(tmp_path))
    assert main(["train", "--profile", "smoke", "--pp", "2"]) == 2  # no torchrun
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "torchrun --nproc_per_node=2" in err
    monkeypatch.setenv("WORLD_SIZE", "4")  # as torchrun would set them, no group
    monkeypatch.setenv("MASTER_ADDR", "localhost")
    monkeypatch.setenv("MASTER_PORT", "1")
    assert main(["train", "--profile", "smoke", "--tp", "4"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "key/value heads divisible by 4" in err
    assert not any(tmp_path.iterdir())  # nothing prepared, nothing written
