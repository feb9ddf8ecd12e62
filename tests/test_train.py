"""The training loop of chapter 04: its parts against references, and its promises.

Every test trains our real GPT at a tiny size (a few thousand parameters) on token
ids it makes itself, so the whole file runs in seconds on two CPU cores.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from llm_from_scratch.data.batches import ShuffledBatches, spread_batches
from llm_from_scratch.io.checkpoint import (CheckpointError, CheckpointMismatchError,
                                            latest_checkpoint, load_checkpoint,
                                            read_checkpoint_state)
from llm_from_scratch.training.metrics import (bits_per_byte, perplexity,
                                               token_byte_lengths)
from llm_from_scratch.model.gpt import GPT, GPTConfig
from llm_from_scratch.training.optim import AdamW, clip_grad_norm, lr_at, param_groups
from llm_from_scratch.training.precision import LossScaler
from llm_from_scratch.config.training import TrainConfig
from llm_from_scratch.training.diagnosis import NonFiniteLossError
from llm_from_scratch.training.loop import evaluate, next_token_loss, train, train_step

ROOT = Path(__file__).resolve().parent.parent
V, T = 61, 16


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_model(seed: int = 0, **changes) -> GPT:
    torch.manual_seed(seed)
    fields = dict(vocab_size=V, n_layers=2, n_heads=2, d_model=32, context_len=T)
    return GPT(GPTConfig(**{**fields, **changes}))


class Windows(torch.utils.data.Dataset):
    """(x, y) windows of a token stream with structure (a noisy counter mod V)."""

    def __init__(self, n: int = 96, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        steps = torch.randint(1, 4, (n * T + 1,), generator=g)
        self.stream = torch.cumsum(steps, 0) % V

    def __len__(self):
        return (len(self.stream) - 1) // T

    def __getitem__(self, i):
        w = self.stream[i * T:(i + 1) * T + 1]
        return w[:-1], w[1:]


def config(**changes) -> TrainConfig:
    base = dict(max_steps=12, lr=1e-2, min_lr=1e-3, warmup_steps=3, grad_accum=2,
                eval_interval=4, checkpoint_interval=4)
    return TrainConfig(**{**base, **changes})


def losses(result) -> list[float]:
    return [r["loss"] for r in result.rows("loss")]


# --- the objective --------------------------------------------------------------

def test_cross_entropy_matches_a_hand_computation():
    logits = [[2.0, 1.0, 0.1], [0.5, 2.5, -1.0]]
    targets = [0, 2]
    by_hand = sum(-z[y] + math.log(sum(math.exp(v) for v in z))
                  for z, y in zip(logits, targets)) / 2
    ours = F.cross_entropy(torch.tensor(logits, dtype=torch.float64),
                           torch.tensor(targets))
    assert ours.item() == pytest.approx(by_hand, rel=1e-12)  # float64: rounding only
    assert perplexity(math.log(3.0)) == pytest.approx(3.0)  # uniform over 3 tokens


def test_bits_per_byte_restates_nats_per_token():
    # ln 2 nats per token is one bit per token; with 4 bytes per token, 1/4 bit/byte.
    assert bits_per_byte(math.log(2), n_tokens=100, n_bytes=400) == pytest.approx(0.25)


def test_token_byte_lengths_add_up_to_the_utf8_length(valid_stories):
    from llm_from_scratch.data.tokenizer import train_hf_tokenizer

    tok = train_hf_tokenizer(valid_stories[:200], 400)
    lengths = token_byte_lengths(tok)
    text = valid_stories[0] + " Caf\u00e9 na\u00efve \u2014 \U0001f600 done."
    ids = tok.encode(text).ids
    assert int(lengths[ids].sum()) == len(text.encode("utf-8"))
    assert lengths[tok.token_to_id("<|endoftext|>")] == 0  # separators are not text


def batch(start: int = 0, size: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    data = Windows()
    xs, ys = zip(*[data[i] for i in range(start, start + size)])
    return torch.stack(xs), torch.stack(ys)  # (size, T), (size, T)


def test_untrained_model_loss_is_near_log_vocab():
    r = evaluate(tiny_model(), [batch(0, 8)])
    assert abs(r["loss"] - math.log(V)) < 0.1  # small init: nearly uniform logits


# --- the optimizer, the schedule, clipping, accumulation ------------------------

@pytest.mark.parametrize("foreach", [False, True])
def test_adamw_matches_torch_adamw(foreach):
    ours_model, ref_model = tiny_model(), tiny_model()
    ours = AdamW(param_groups(ours_model, 0.1), lr=3e-3, betas=(0.9, 0.95))
    ref = torch.optim.AdamW(param_groups(ref_model, 0.1), lr=3e-3, betas=(0.9, 0.95),
                            foreach=foreach)
    data = Windows()
    for step in range(10):
        x, y = batch(step)
        for model, opt in ((ours_model, ours), (ref_model, ref)):
            model(x, y)[1].backward()
            opt.step()
            opt.zero_grad()
    # Same formula, same operation order: equal up to float32 rounding (1e-6 of the
    # weights' scale), which is also what a fused or foreach variant differs by.
    for a, b in zip(ours_model.parameters(), ref_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    ref.load_state_dict(ours.state_dict())  # the same state layout


def test_weight_decay_skips_vectors():
    groups = param_groups(tiny_model(), 0.1)
    assert all(p.dim() >= 2 for p in groups[0]["params"]) and groups[0]["weight_decay"]
    assert all(p.dim() == 1 for p in groups[1]["params"])
    assert groups[1]["weight_decay"] == 0.0


def test_schedule_warms_up_then_follows_a_cosine_to_min_lr():
    lrs = [lr_at(s, 1.0, 0.1, 10, 110) for s in range(120)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[60] == pytest.approx(0.55)  # half way through the cosine: the mean
    assert lrs[110] == pytest.approx(0.1) and lrs[119] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lrs[9:110], lrs[10:110]))  # never rises again


def test_clip_grad_norm_matches_torch():
    a, b = tiny_model(), tiny_model()
    x, y = batch()
    for m in (a, b):
        (m(x, y)[1] * 100).backward()  # large gradients, so that clipping bites
    ours = clip_grad_norm(list(a.parameters()), 0.5)
    ref = torch.nn.utils.clip_grad_norm_(list(b.parameters()), 0.5)
    torch.testing.assert_close(ours, ref)  # float32: default tolerances
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p.grad, q.grad)
    assert ours > 0.5 and clip_grad_norm(list(a.parameters()), 0) <= 0.5 + 1e-5


def masked(y: torch.Tensor, keep_from: int) -> torch.Tensor:
    """Targets before position keep_from of every row set to -100 (an SFT prompt)."""
    y = y.clone()
    y[:, :keep_from] = -100
    return y


def test_next_token_loss_leaves_masked_targets_out():
    model = tiny_model()
    x, y = batch(0, 4)
    ym = masked(y, 10)
    loss_sum, n = next_token_loss(model, (x, ym))
    logits, _ = model(x)
    kept = F.cross_entropy(logits[:, 10:].flatten(0, 1), y[:, 10:].flatten(),
                           reduction="sum")
    assert n == 4 * (T - 10)
    torch.testing.assert_close(loss_sum, kept)  # float32, same terms: defaults


def test_masked_accumulation_equals_one_large_batch_computed_directly():
    """Micro-batches whose masks keep 16, 4 and 10 targets a row: the step's gradient
    is that of the mean over all 120 targets, as one big batch computed directly
    (torch's cross_entropy with ignore_index), not the mean of micro-batch means."""
    big, acc = tiny_model(), tiny_model()
    micro = [(x, masked(y, cut)) for (x, y), cut in
             zip([batch(0), batch(4), batch(8)], (0, 12, 6))]
    x = torch.cat([m[0] for m in micro])
    y = torch.cat([m[1] for m in micro])
    logits, _ = big(x)
    F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=-100).backward()
    expected = {n: p.grad.clone() for n, p in big.named_parameters()}
    # SGD with lr 1 and no clipping: the step moves each weight by its gradient.
    opt = torch.optim.SGD(acc.parameters(), lr=1.0)
    before = {n: p.detach().clone() for n, p in acc.named_parameters()}
    feed = iter(micro)
    r = train_step(acc, opt, lambda: next(feed), TrainConfig(
        max_steps=1, lr=1.0, min_lr=1.0, grad_accum=3, grad_clip=0.0))
    assert r["targets"] == 4 * (16 + 4 + 10)
    direct = F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=-100)
    assert r["loss"] == pytest.approx(direct.item(), rel=1e-6)  # float32 sums
    # Only the order of float32 additions differs: agreement to ~1e-6 relative.
    for n, p in acc.named_parameters():
        torch.testing.assert_close(before[n] - p.detach(), expected[n], rtol=1e-5,
                                   atol=1e-7)


def test_evaluate_counts_only_unmasked_targets_and_their_bytes():
    model, (x, y) = tiny_model(), batch(0, 4)
    token_bytes = torch.arange(V) % 3 + 1  # any byte lengths
    full = evaluate(model, [(x, y)], token_bytes=token_bytes)
    part = evaluate(model, [(x, masked(y, 8))], token_bytes=token_bytes)
    assert full["tokens"] == 4 * T and part["tokens"] == 4 * (T - 8)
    assert part["bytes"] == int(token_bytes[y[:, 8:]].sum())
    loss_sum, _ = next_token_loss(model, (x, masked(y, 8)))
    assert part["loss"] == pytest.approx(loss_sum.item() / (4 * (T - 8)), rel=1e-6)


def test_validation_batches_are_spread_over_the_whole_split():
    data = Windows(n=100)
    batches = spread_batches(data, 4, n_batches=3)
    firsts = [data[i][0] for i in (0, 99)]
    rows = torch.cat([b[0] for b in batches])
    assert len(batches) == 3 and len(rows) == 12
    assert torch.equal(rows[0], firsts[0]) and torch.equal(rows[-1], firsts[1])
    assert len(spread_batches(data, 8)) == 100 // 8  # None: every full batch


def test_loss_scaler_follows_torch_grad_scaler():
    ours = LossScaler(init_scale=2.0**10, growth_interval=3)
    ref = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=3)
    w_ours, w_ref = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(3))
    opt_ref = torch.optim.SGD([w_ref], lr=0.0)
    for overflow in [False, False, False, True, False, True, True, False, False, False]:
        c = torch.full((3,), float("inf") if overflow else 0.5)  # inf: an overflow
        ours.scale_loss((w_ours * c).sum()).backward()
        ref.scale((w_ref * c).sum()).backward()
        found = ours.unscale_([w_ours])
        ours.update(found)
        ref.unscale_(opt_ref)
        ref.step(opt_ref)
        ref.update()
        assert found == overflow and ours.scale == ref.get_scale()  # exact: powers of 2
        if not overflow:
            torch.testing.assert_close(w_ours.grad, w_ref.grad)  # both unscaled: c
        w_ours.grad = w_ref.grad = None


# --- the loop: resume, signals, checkpoints, NaN ----------------------------------

@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_resume_reproduces_the_uninterrupted_run_exactly(tmp_path, precision):
    cfg = config(precision=precision)
    whole = train(tiny_model(), ShuffledBatches(Windows(), 4, seed=1), cfg,
                  val_data=[batch()], out_dir=tmp_path / "whole")
    first = train(tiny_model(), ShuffledBatches(Windows(), 4, seed=1), cfg,
                  out_dir=tmp_path / "split", stop_at_step=5)
    assert first.stopped == "stop_at_step" and first.step == 5
    # A fresh model and data object: everything must come from the checkpoint.
    model = tiny_model(seed=123)
    rest = train(model, ShuffledBatches(Windows(), 4, seed=1), cfg,
                 out_dir=tmp_path / "split")
    assert rest.resumed_from == 5 and rest.stopped is None
    assert losses(rest) == losses(whole)  # exactly: same numbers, same order of ops
    final = tiny_model(seed=7)
    load_checkpoint(whole.checkpoint, final)
    assert all(torch.equal(a, b)
               for a, b in zip(final.parameters(), model.parameters()))


class FrozenReference:
    """A loss of another shape than next-token prediction, as DPO's: cross-entropy
    plus a penalty for drifting from a frozen copy of the starting model."""

    def __init__(self, model: GPT):
        self.ref = tiny_model()
        self.ref.load_state_dict(model.state_dict())
        self.ref.requires_grad_(False)

    def __call__(self, model, batch):
        x, y = batch
        logits, _ = model(x)
        with torch.no_grad():
            ref_logits, _ = self.ref(x)
        ce = F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=-100,
                             reduction="none")
        drift = (logits - ref_logits).pow(2).mean(-1).flatten()
        keep = y.flatten() != -100
        return (ce + 0.1 * drift)[keep].sum(), keep.sum()


def test_a_custom_loss_trains_and_resumes_exactly(tmp_path):
    def run(out, **kw):
        model = tiny_model()
        result = train(model, ShuffledBatches(Windows(), 4, seed=2), config(),
                       loss_fn=FrozenReference(model), val_data=[batch()],
                       out_dir=out, **kw)
        return model, result

    _, whole = run(tmp_path / "whole")
    _, first = run(tmp_path / "split", stop_at_step=5)
    model, rest = run(tmp_path / "split")
    assert first.step == 5 and rest.resumed_from == 5 and rest.step == 12
    assert losses(rest) == losses(whole)  # exactly, as for the built-in loss
    val = [r["val_loss"] for r in rest.rows("val_loss")]
    assert val == [r["val_loss"] for r in whole.rows("val_loss")] and val[-1] < val[0]


def test_the_last_k_checkpoints_are_kept(tmp_path):
    cfg = config(max_steps=12, checkpoint_interval=2, keep_checkpoints=3)
    train(tiny_model(), ShuffledBatches(Windows(), 4), cfg, out_dir=tmp_path)
    kept = sorted(p.name[:12] for p in (tmp_path / "checkpoints").glob("step_*"))
    assert kept == ["step_0000008", "step_0000010", "step_0000012"]


def test_a_damaged_latest_checkpoint_falls_back_to_the_one_before(tmp_path):
    cfg = config(max_steps=8, checkpoint_interval=4)
    whole = train(tiny_model(), ShuffledBatches(Windows(), 4), cfg,
                  out_dir=tmp_path / "whole")
    train(tiny_model(), ShuffledBatches(Windows(), 4), cfg, out_dir=tmp_path / "run",
          stop_at_step=8)
    latest = latest_checkpoint(tmp_path / "run" / "checkpoints")
    weights = latest / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])  # the newest one is damaged
    with pytest.warns(UserWarning, match=r"step_0000008.*truncated.*resuming from "
                                         r"the older checkpoint step_0000004"):
        rest = train(tiny_model(), ShuffledBatches(Windows(), 4), cfg,
                     out_dir=tmp_path / "run")
    assert rest.resumed_from == 4 and losses(rest) == losses(whole)


def test_resume_restores_optimizer_hyperparameters_with_their_types(tmp_path):
    train(tiny_model(), ShuffledBatches(Windows(), 4), config(max_steps=4),
          out_dir=tmp_path)
    model = tiny_model()
    opt = AdamW(param_groups(model, 0.1), lr=1e-3, betas=(0.9, 0.95))
    load_checkpoint(latest_checkpoint(tmp_path / "checkpoints"), model, opt)
    for group in opt.param_groups:
        assert type(group["betas"]) is tuple and group["betas"] == (0.9, 0.95)
        assert all(type(group[k]) is float for k in ("lr", "eps", "weight_decay"))


def test_a_run_folder_loads_without_the_corpus(tmp_path, valid_stories):
    from llm_from_scratch.inference.load import load_run
    from llm_from_scratch.data.tokenizer import train_hf_tokenizer

    tok = train_hf_tokenizer(valid_stories[:100], V)
    model = tiny_model()
    train(model, ShuffledBatches(Windows(), 4), config(max_steps=4), out_dir=tmp_path,
          run_files={"tokenizer.json": tok.to_str()})
    loaded, loaded_tok, ckpt = load_run(tmp_path)  # no data path, no profile
    assert loaded_tok.to_str() == tok.to_str()
    assert ckpt == latest_checkpoint(tmp_path / "checkpoints")
    x, _ = batch()
    torch.testing.assert_close(loaded(x)[0], model.eval()(x)[0], rtol=0, atol=0)
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["train"]["precision"] == "fp32" and run["model"]["d_model"] == 32


def test_resume_of_a_plain_iterable_skips_the_batches_it_used(tmp_path):
    batches = [batch(j) for j in range(0, 40, 4)]  # no state_dict; restarts at its end
    cfg = config(max_steps=8, grad_accum=1)
    whole = train(tiny_model(), batches, cfg, out_dir=tmp_path / "a")
    train(tiny_model(), batches, cfg, out_dir=tmp_path / "b", stop_at_step=3)
    rest = train(tiny_model(), batches, cfg, out_dir=tmp_path / "b")
    assert losses(rest) == losses(whole)


def test_a_finished_run_is_reused_without_training(tmp_path):
    done = train(tiny_model(), ShuffledBatches(Windows(), 4), config(),
                 out_dir=tmp_path)
    again = train(tiny_model(), ShuffledBatches(Windows(), 4), config(),
                  out_dir=tmp_path)
    assert again.resumed_from == again.step == done.step
    assert again.seconds == done.seconds  # no step was run
    assert losses(again) == losses(done)


def test_training_lowers_the_loss():
    result = train(tiny_model(), ShuffledBatches(Windows(), 8), config(max_steps=40))
    first, last = losses(result)[0], losses(result)[-1]
    assert last < 0.75 * first, (first, last)  # a noisy counter is easy to learn


SIGTERM_SCRIPT = """
import sys, torch
torch.set_num_threads(1)
sys.path.insert(0, {root!r})
from tests.test_train import Windows, config, tiny_model
from llm_from_scratch.data.batches import ShuffledBatches
from llm_from_scratch.training.loop import train
result = train(tiny_model(), ShuffledBatches(Windows(), 4), config(max_steps=100000),
               out_dir={out!r})
print("stopped by", result.stopped, "at step", result.step, flush=True)
"""


def wait_for_step(log: Path, step: int, proc, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if log.exists() and any(json.loads(line).get("step", 0) >= step
                                for line in log.read_text().splitlines()
                                if line.endswith("}")):
            return
        time.sleep(0.05)
    raise TimeoutError(f"no step {step} in {log}")


def test_sigterm_mid_run_leaves_a_loadable_checkpoint(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(SIGTERM_SCRIPT.format(root=str(ROOT), out=str(tmp_path / "run")))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    wait_for_step(tmp_path / "run" / "metrics.jsonl", 6, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "stopped by SIGTERM" in out
    step = int(out.split()[-1])
    ckpt = latest_checkpoint(tmp_path / "run" / "checkpoints")
    assert read_checkpoint_state(ckpt)["step"] == step >= 6
    load_checkpoint(ckpt, tiny_model(seed=5))  # loads into a fresh model
    assert not list((tmp_path / "run" / "checkpoints").glob(".tmp-*"))


KILL_SCRIPT = """
import sys, torch
torch.set_num_threads(1)
sys.path.insert(0, {root!r})
from tests.test_train import tiny_model
from llm_from_scratch.io.checkpoint import save_checkpoint
from llm_from_scratch.training.optim import AdamW
model = tiny_model(d_model=128, n_layers=4)  # large enough that a write takes a while
opt = AdamW(model.parameters())
ids = torch.zeros(1, 4, dtype=torch.long)
model(ids, ids)[1].backward()
opt.step()
print("ready", flush=True)
for step in range(1, 10**6):
    save_checkpoint({out!r}, model, opt, {{"step": step}})
"""


def test_a_kill_at_any_moment_leaves_the_latest_checkpoint_intact(tmp_path):
    out = tmp_path / "ckpts"
    script = tmp_path / "writer.py"
    script.write_text(KILL_SCRIPT.format(root=str(ROOT), out=str(out)))
    for delay in (0.05, 0.23, 0.5):  # SIGKILL: no handler runs, nothing is cleaned
        proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                                text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        proc.kill()
        proc.wait()
        ckpt = latest_checkpoint(out)
        if ckpt is not None:  # the first write may not have finished
            state = read_checkpoint_state(ckpt)  # every file matches its manifest
            load_checkpoint(ckpt, tiny_model(d_model=128, n_layers=4),
                            restore_rng=False)
            assert state["step"] >= 1
    assert latest_checkpoint(out) is not None


@pytest.fixture
def finished_run(tmp_path):
    result = train(tiny_model(), ShuffledBatches(Windows(), 4), config(max_steps=4),
                   out_dir=tmp_path)
    return result.checkpoint


def test_a_truncated_checkpoint_file_is_a_clear_error(finished_run):
    weights = finished_run / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:500])
    with pytest.raises(CheckpointError, match="model.safetensors.*truncated"):
        load_checkpoint(finished_run, tiny_model())


def test_a_damaged_checkpoint_file_is_a_clear_error(finished_run):
    f = finished_run / "optimizer.safetensors"
    data = bytearray(f.read_bytes())
    data[-3] ^= 0xFF  # same size, one byte changed
    f.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="optimizer.safetensors.*damaged"):
        load_checkpoint(finished_run, tiny_model())


def test_a_missing_manifest_is_a_clear_error(finished_run):
    (finished_run / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match="manifest.json.*not a complete"):
        load_checkpoint(finished_run, tiny_model())


def test_resuming_with_another_configuration_names_the_difference(tmp_path,
                                                                   finished_run):
    with pytest.raises(CheckpointMismatchError, match=r"train\.lr: 0\.01 in the "
                                                      r"checkpoint, 0\.02 now"):
        train(tiny_model(), ShuffledBatches(Windows(), 4), config(max_steps=4, lr=2e-2),
              out_dir=tmp_path)


def test_a_checkpoint_of_another_model_is_a_clear_error(finished_run):
    with pytest.raises(CheckpointMismatchError,
                       match="does not fit this model: size mismatch for"):
        load_checkpoint(finished_run, tiny_model(d_model=64))


def test_a_nan_loss_stops_training_with_a_diagnosis(tmp_path):
    model = tiny_model()
    bad = model.layers[1].mlp.up_proj.weight

    def poison(m):  # called after step 3 (as a sampler would be): a weight goes bad
        with torch.no_grad():
            bad[0, 0] = float("nan")
        return "poisoned"

    cfg = config(max_steps=20, checkpoint_interval=2, grad_accum=1, sample_steps=(3,))
    with pytest.raises(NonFiniteLossError) as info:
        train(model, ShuffledBatches(Windows(), 4), cfg, out_dir=tmp_path,
              sample_fn=poison)
    message = str(info.value)
    assert "loss is nan at step 4" in message
    assert "layers.1.mlp.up_proj.weight" in message
    assert "step_0000002" in message  # the last good checkpoint is named
    rows = [json.loads(line) for line in
            (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert max(r["step"] for r in rows if "loss" in r) == 3  # nothing logged after


def test_an_fp16_overflow_is_diagnosed_as_such():
    model = tiny_model()
    with torch.no_grad():
        model.norm.weight.fill_(1e6)  # logits far beyond fp16's largest value
    with pytest.raises(NonFiniteLossError, match="fp16 overflows above 65504"):
        train(model, ShuffledBatches(Windows(), 4), config(precision="fp16"))


# --- the command line ---------------------------------------------------------------

def llmfs_train(*args: str, home: Path, data_dir: Path, launcher=(sys.executable, "-m"),
                **popen):
    env = {**os.environ, "LLMFS_HOME": str(home), "PYTHONPATH": str(ROOT),
           "OMP_NUM_THREADS": "1", **({"LLMFS_DATA": str(data_dir)} if data_dir else {})}
    return subprocess.Popen([*launcher, "llm_from_scratch", "train", "--profile",
                             "smoke", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)


def test_cli_train_stops_on_sigterm_with_a_checkpoint_and_resumes(tmp_path, data_dir):
    out = tmp_path / "run"
    proc = llmfs_train("--max-steps", "100000", "--out", str(out), home=tmp_path,
                       data_dir=data_dir)
    wait_for_step(out / "metrics.jsonl", 3, proc, timeout=120)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "stopped (SIGTERM)" in stdout and "run the same command again" in stdout
    step = read_checkpoint_state(latest_checkpoint(out / "checkpoints"))["step"]
    proc = llmfs_train("--max-steps", "100000", "--out", str(out), "--stop-at-step",
                       str(step + 2), home=tmp_path, data_dir=data_dir)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert f"resumed from step {step}" in stdout
    state = read_checkpoint_state(latest_checkpoint(out / "checkpoints"))
    assert state["step"] == step + 2


def test_cli_train_runs_under_torchrun(tmp_path, data_dir):
    torchrun = Path(sys.executable).with_name("torchrun")
    proc = llmfs_train("--max-steps", "3", "--out", str(tmp_path / "run"),
                       home=tmp_path, data_dir=data_dir,
                       launcher=(str(torchrun), "--standalone", "--nproc_per_node=2",
                                 "-m"))
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 0, stderr[-2000:]
    assert stdout.count("validation: loss") == 1  # only rank 0 reports
    assert read_checkpoint_state(latest_checkpoint(tmp_path / "run" / "checkpoints")
                                 )["step"] == 3
