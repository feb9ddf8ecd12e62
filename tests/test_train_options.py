"""Appendix A's options as a run switches them on: ``pretrain(qk_layernorm=,
z_loss=, activation_checkpointing=)`` and ``llmfs train --qk-layernorm --z-loss COEF
--activation-checkpointing``. Smoke-profile runs of a few steps, in a folder of
their own (LLMFS_HOME)."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from llm_from_scratch.__main__ import main
from llm_from_scratch.io.checkpoint import CheckpointMismatchError
from llm_from_scratch.model.gpt import GPT, GPTConfig
from llm_from_scratch.recipes.pretrain import (pretrain, run_id, stability_options,
                                               training_loss)
from llm_from_scratch.config.training import TrainConfig
from llm_from_scratch.training.loop import next_token_loss
from llm_from_scratch.config.runtime import artifacts_dir

QUIET = dict(eval_interval=0, sample_steps=(), checkpoint_interval=0)
PINNED_ID = "06dc679767"  # run_id of the description below, before the options


@pytest.fixture(scope="module")
def home(tmp_path_factory, data_dir):
    """LLMFS_HOME and LLMFS_DATA for this module's runs (the smoke tokenizer and
    shards are made once, by the first run)."""
    mp = pytest.MonkeyPatch()
    path = tmp_path_factory.mktemp("home")
    mp.setenv("LLMFS_HOME", str(path))
    if data_dir is not None:
        mp.setenv("LLMFS_DATA", str(data_dir))
    yield path
    mp.undo()


def run(steps: int, **options):
    """The TrainResult of a smoke run of ``steps`` steps that reports nothing."""
    return pretrain("smoke", max_steps=steps, **QUIET, **options)[0]


def losses(result) -> list[float]:
    return [r["loss"] for r in result.rows("loss")]


def run_dir(result):
    return result.checkpoint.parent.parent


def test_a_plain_runs_id_is_the_one_it_had_before_the_options_existed():
    # Pinned: the digest of this description before the options were added (runs
    # already trained are found by it). With an option on, the id changes.
    config = TrainConfig(max_steps=10)
    mconfig = GPTConfig(vocab_size=512, n_layers=2, n_heads=4, d_model=64,
                        context_len=64)
    sizes = SimpleNamespace(batch_size=8, eval_batches=4, seed=0)
    data = {"tokenizer": "t", "shards": {"train": ["a"], "valid": ["b"]}}
    plain = run_id(config, mconfig, sizes, data)
    assert plain == PINNED_ID
    assert run_id(config, mconfig, sizes, data, stability_options()) == plain
    ids = {run_id(config, mconfig, sizes, data, stability_options(*o))
           for o in [(True, 0.0), (False, 1e-4), (True, 1e-4), (False, 1e-3)]}
    assert len(ids) == 4 and plain not in ids


@pytest.mark.parametrize("coef", [-1e-4, math.nan, math.inf, True, "1e-4"])
def test_a_z_loss_coefficient_must_be_a_number_at_least_zero(coef):
    with pytest.raises(ValueError, match="z_loss"):
        stability_options(z_loss=coef)


def test_z_loss_trains_on_cross_entropy_plus_coef_log_z_squared_and_validates_on_ce():
    # Reference: F.cross_entropy and torch.logsumexp on the same logits, float32;
    # the sums agree to rounding (1e-4 relative: a few hundred terms of order 1-10).
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=64, n_layers=1, n_heads=2, d_model=16,
                          context_len=12))
    x, y = torch.randint(64, (3, 12)), torch.randint(64, (3, 12))
    y[0, :4] = -100  # left out of both terms
    coef, loss_fn = 1e-2, training_loss(stability_options(z_loss=1e-2))
    with torch.no_grad():
        logits = model(x)[0].flatten(0, 1)
        keep = y.flatten() != -100
        ce = F.cross_entropy(logits[keep], y.flatten()[keep], reduction="sum")
        log_z = torch.logsumexp(logits[keep], dim=-1)
        total, n = loss_fn(model.train(), (x, y))
        assert n == keep.sum()
        expected = ce + coef * (log_z ** 2).sum()
        assert torch.allclose(total, expected, rtol=1e-4)
        penalty = (total - ce).item() / n.item()  # per target: coef * mean(log Z^2)
        assert penalty == pytest.approx(coef * (log_z ** 2).mean().item(), rel=1e-3)
        assert torch.equal(loss_fn(model.eval(), (x, y))[0],
                           next_token_loss(model, (x, y))[0])
    assert training_loss({}) is next_token_loss


def test_activation_checkpointing_trains_to_the_same_losses_in_the_same_run(home):
    # Recomputation repeats the forward pass's operations in the same order on the
    # same inputs: on a CPU the losses are equal exactly, so it stays out of the id.
    # (Runs of 4 steps stopped after 3: no final evaluation, no export.)
    plain = run(4, stop_at_step=3)
    checkpointed = run(4, stop_at_step=3, activation_checkpointing=True,
                       out_dir=home / "ac")
    assert losses(plain) == losses(checkpointed) and len(losses(plain)) == 3
    again = run(4, stop_at_step=3, activation_checkpointing=True)  # plain run's id
    assert run_dir(again) == run_dir(plain) and again.resumed_from == 3


def test_a_qk_layernorm_run_resumes_its_gains_and_exports_qwen3(home):
    from llm_from_scratch.inference.generate import load_model
    from llm_from_scratch.inference.load import load_run
    from llm_from_scratch.io.runs import MetricsLog

    whole, whole_model, _ = pretrain("smoke", max_steps=3, qk_layernorm=True,
                                     out_dir=home / "qk-whole", **QUIET)
    first = run(3, qk_layernorm=True, stop_at_step=2)
    assert first.stopped and first.resumed_from == 0  # a new run, not a plain one
    resumed, model, tok = pretrain("smoke", max_steps=3, qk_layernorm=True, **QUIET)
    assert resumed.resumed_from == 2 and resumed.step == 3
    # The resumed run is the uninterrupted one: the same losses and the same gains
    # (which the checkpoint gave back to the re-applied q_norm modules).
    logged = MetricsLog(run_dir(resumed) / "metrics.jsonl").rows()
    assert losses(whole) == [r["loss"] for r in logged if "loss" in r]
    gains = model.layers[0].self_attn.q_norm.weight
    assert torch.equal(gains, whole_model.layers[0].self_attn.q_norm.weight)
    assert not torch.equal(gains, torch.ones_like(gains))  # trained away from 1
    run_json = json.loads((run_dir(resumed) / "run.json").read_text())
    assert run_json["stability"] == {"qk_layernorm": True}
    export = artifacts_dir("smoke") / "pretrained"  # the last finished run's
    assert json.loads((export / "config.json").read_text())["model_type"] == "qwen3"
    idx = torch.tensor([tok.encode("Once upon a time").ids])
    with torch.no_grad():
        expected = model.eval()(idx)[0]
        for folder in (export, run_dir(resumed)):  # Qwen3 export; the checkpoint
            assert torch.equal(load_model(folder)[0](idx)[0], expected), folder
        assert torch.equal(load_run(run_dir(resumed))[0](idx)[0], expected)


def test_a_z_loss_run_resumes_and_refuses_another_coefficient(home):
    first = run(3, z_loss=1e-4, stop_at_step=1, out_dir=home / "z")
    assert first.stopped and first.step == 1
    with pytest.raises(CheckpointMismatchError, match="z_loss"):
        run(3, z_loss=1e-3, out_dir=home / "z")
    again = run(3, z_loss=1e-4, stop_at_step=2, out_dir=home / "z")
    assert again.resumed_from == 1 and again.step == 2


def test_llmfs_train_switches_the_options_on(home, capsys):
    out = home / "cli"
    assert main(["train", "--profile", "smoke", "--max-steps", "2", "--stop-at-step",
                 "1", "--sample-steps", "--eval-interval", "0", "--out", str(out),
                 "--qk-layernorm", "--z-loss", "1e-4",
                 "--activation-checkpointing"]) == 0
    assert "stopped (stop_at_step) at step 1" in capsys.readouterr().out
    run_json = json.loads((out / "run.json").read_text())
    assert run_json["stability"] == {"qk_layernorm": True, "z_loss": 1e-4}


@pytest.mark.parametrize("value", ["-0.001", "nan", "inf", "much"])
def test_llmfs_train_refuses_a_bad_z_loss_in_one_line(capsys, value):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--profile", "smoke", "--z-loss", value])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and len(err.strip().splitlines()) == 1
    assert "argument --z-loss: not a coefficient >= 0" in err and repr(value) in err
