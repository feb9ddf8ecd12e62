"""Chapter 08's tuning: rates and intervals, the SFT run (resume), llmfs sft and chat."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from llm_from_scratch.posttrain.chat import add_chat_tokens, grow_vocab
from llm_from_scratch.posttrain.instructions import Constraint, Instruction
from llm_from_scratch.model.gpt import GPT, GPTConfig
from llm_from_scratch.recipes.sft import (Z95, follow_rates, save_chat_model, sft,
                                          sft_loss, wilson_interval)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_wilson_interval_matches_its_closed_forms():
    lo, hi = wilson_interval(0, 10)  # k = 0: (0, z^2 / (n + z^2))
    assert lo == 0 and hi == pytest.approx(Z95**2 / (10 + Z95**2), abs=1e-12)
    lo, hi = wilson_interval(5, 10)  # symmetric about 1/2
    assert lo + hi == pytest.approx(1.0, abs=1e-12)
    assert lo == pytest.approx(0.236593, abs=1e-6)  # Wilson (1927), z = 1.96
    lo3, hi3 = wilson_interval(3, 10)
    lo7, hi7 = wilson_interval(7, 10)
    assert (lo3, hi3) == pytest.approx((1 - hi7, 1 - lo7), abs=1e-12)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_follow_rates_count_each_kind_and_whole_instructions():
    words = Constraint("words", ("ball",))
    short = Constraint("max_sentences", 1)
    insts = [Instruction("p", (words, short), "Tom had a ball."),
             Instruction("p", (words,), "A ball."),
             Instruction("p", (short,), "Go.")]
    rates = follow_rates(insts, ["A ball. A cat.", "No.", "Go home."])
    assert (rates["words"]["obeyed"], rates["words"]["n"]) == (1, 2)
    assert (rates["max_sentences"]["obeyed"], rates["max_sentences"]["n"]) == (1, 2)
    assert (rates["all"]["obeyed"], rates["all"]["n"]) == (1, 3)
    assert "name" not in rates
    assert rates["all"]["low"] < 1 / 3 < rates["all"]["high"]


def test_sft_loss_cuts_padding_columns_without_changing_the_loss():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=40, n_layers=1, n_heads=2, d_model=16,
                          context_len=16))
    x = torch.randint(0, 40, (3, 16))
    y = torch.randint(0, 40, (3, 16))
    y[:, 9:] = -100  # padding at the end of every row
    y[0, :4] = -100  # a masked prompt
    from llm_from_scratch.training.loop import next_token_loss

    full_sum, full_n = next_token_loss(model, (x, y))
    cut_sum, cut_n = sft_loss(model, (x, y))
    assert cut_n == full_n == (y != -100).sum()
    # Same terms summed; the logits of the cut positions are the same numbers
    # (causal attention), so only float32 summation order may differ.
    assert torch.allclose(cut_sum, full_sum, rtol=1e-6)


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory, data_dir):
    """A random model of the smoke profile's shape with the smoke tokenizer."""
    from llm_from_scratch.model.hf import save_hf
    from llm_from_scratch.config.profiles import get_profile
    from llm_from_scratch.data.prepare import load_or_train

    tok = load_or_train("smoke", data_dir)
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_profile(get_profile("smoke").model,
                                       tok.get_vocab_size()))
    return save_hf(model, tmp_path_factory.mktemp("base"), tok)


def _weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_smoke_sft_resumes_exactly_and_exports_a_chat_model(base_dir, tmp_path,
                                                             data_dir):
    from llm_from_scratch.inference.generate import load_model

    run = dict(base=base_dir, data_path=data_dir, max_steps=6, checkpoint_interval=3,
               eval_interval=3, batch_size=4, eval_batches=1)
    whole = sft("smoke", out_dir=tmp_path / "a", export_dir=tmp_path / "ea", **run)
    stopped = sft("smoke", out_dir=tmp_path / "b", export_dir=tmp_path / "eb",
                  stop_at_step=3, **run)
    assert stopped.result.stopped == "stop_at_step" and stopped.export is None
    resumed = sft("smoke", out_dir=tmp_path / "b", export_dir=tmp_path / "eb", **run)
    assert resumed.result.resumed_from == 3 and resumed.result.step == 6
    a, b = _weights(whole.model), _weights(resumed.model)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    losses = [r["loss"] for r in whole.result.rows("loss")]
    assert losses == [r["loss"] for r in resumed.result.rows("loss")]
    model, tok, _ = load_model(tmp_path / "ea")
    assert tok.token_to_id("<|end|>") == model.config.vocab_size - 1
    assert torch.equal(model.embed_tokens.weight, a["embed_tokens.weight"])


def llmfs(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llm_from_scratch", *args],
                          input=stdin, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ))


def test_sft_without_an_instruction_that_fits_is_a_one_line_error(tmp_path,
                                                                  data_dir):
    from llm_from_scratch.model.hf import save_hf
    from llm_from_scratch.data.prepare import load_or_train

    tok = load_or_train("smoke", data_dir)
    model = GPT(GPTConfig(vocab_size=tok.get_vocab_size(), n_layers=1, n_heads=2,
                          d_model=16, context_len=8))  # no prompt fits 8 tokens
    save_hf(model, tmp_path / "tiny", tok)
    out = llmfs("sft", "--profile", "smoke", "--base", str(tmp_path / "tiny"),
                "--out", str(tmp_path / "run"))
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0, out.stderr
    assert "no training instruction" in out.stderr


@pytest.fixture(scope="module")
def chat_dir(tmp_path_factory, valid_stories):
    from llm_from_scratch.data.tokenizer import train_hf_tokenizer

    tok = add_chat_tokens(train_hf_tokenizer(valid_stories[:200], 320))
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=320, n_layers=1, n_heads=2, d_model=32,
                          context_len=48))
    grow_vocab(model, tok.get_vocab_size())
    return save_chat_model(model, tmp_path_factory.mktemp("chat"), tok)


def test_chat_streams_a_reply_to_each_piped_line(chat_dir):
    from llm_from_scratch.inference.generate import generate, load_model
    from llm_from_scratch.posttrain.chat import END, render_chat

    out = llmfs("chat", "--model", str(chat_dir), "--greedy", "--max-new-tokens",
                "6", stdin="Write a story.\n\nUse the word ball.\n")
    assert out.returncode == 0, out.stderr
    model, tok, _ = load_model(chat_dir)
    first = render_chat(tok, [{"role": "user", "content": "Write a story."}], True)
    stops = [tok.token_to_id(END), tok.token_to_id("<|endoftext|>")]
    [ids] = generate(model, [first], 6, temperature=0, stop_ids=stops)
    expected = tok.decode([t for t in ids if t not in stops])
    assert out.stdout.startswith(expected + "\n")  # the first of two replies


def test_chat_refuses_long_prompts_and_models_without_chat_tokens(chat_dir,
                                                                  tmp_path):
    from llm_from_scratch.model.hf import load_hf, save_hf
    from tokenizers import Tokenizer

    out = llmfs("chat", "--model", str(chat_dir), "--greedy",
                stdin="word " * 60 + "\n")
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "context holds 48" in out.stderr
    plain = Tokenizer.from_file(str(chat_dir / "tokenizer.json"))
    plain = Tokenizer.from_str(plain.to_str().replace("<|user|>", "<|someone|>"))
    save_hf(load_hf(chat_dir), tmp_path / "plain", plain)
    out = llmfs("chat", "--model", str(tmp_path / "plain"), stdin="hello\n")
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "no chat tokens" in out.stderr
