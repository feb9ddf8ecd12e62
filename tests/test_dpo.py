"""Chapter 09's DPO: the loss (ln 2 at the start, hand cases, trl's), the pairs, a
resumed smoke run and `llmfs dpo`."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from llm_from_scratch.posttrain.preferences import (PairsFormatError, PreferencePair,
                                                    degeneracy, load_pairs, make_pairs,
                                                    reply_score, save_pairs,
                                                    story_words)
from llm_from_scratch.recipes.dpo import (DPOConfigError, PairDataset, check_beta, dpo,
                                          dpo_loss, pair_batches, preference_metrics,
                                          reference_logps, sample_pairs)
from llm_from_scratch.posttrain.chat import add_chat_tokens
from llm_from_scratch.posttrain.instructions import Constraint, Instruction
from llm_from_scratch.model.gpt import GPT, GPTConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def test_dpo_loss_is_ln2_when_the_policy_is_the_reference():
    torch.manual_seed(0)
    chosen, rejected = -50 * torch.rand(16), -50 * torch.rand(16)
    for beta in (0.01, 0.1, 1.0):
        loss, r_w, r_l = dpo_loss(chosen, rejected, chosen, rejected, beta)
        assert torch.allclose(loss, torch.full_like(loss, math.log(2)), atol=1e-7)
        assert not r_w.any() and not r_l.any()  # rewards exactly 0


def test_rewards_and_margin_match_a_hand_computation():
    loss, r_w, r_l = dpo_loss(torch.tensor([-10.0]), torch.tensor([-20.0]),
                              torch.tensor([-11.0]), torch.tensor([-18.0]), 0.5)
    assert r_w.item() == pytest.approx(0.5, abs=1e-6)  # 0.5 * (-10 + 11)
    assert r_l.item() == pytest.approx(-1.0, abs=1e-6)  # 0.5 * (-20 + 18)
    assert loss.item() == pytest.approx(math.log1p(math.exp(-1.5)), abs=1e-6)


def test_beta_must_be_positive():
    for bad in (0, -0.1, float("nan"), float("inf")):
        with pytest.raises(DPOConfigError, match="beta must be a positive"):
            check_beta(bad)
    assert check_beta(0.1) == 0.1


def test_pair_building_drops_ties_and_puts_degenerate_text_last():
    asked = (Constraint("words", ("ball",)),)
    inst = Instruction("Use ball.", asked, "", "train:0")
    assert degeneracy("") == "empty" and degeneracy("go go go go go go") == \
        "repetitive"
    assert degeneracy("Tom had a ball. He threw it to Lily.") is None
    assert reply_score(inst, "ball ball ball ball ball ball ball") == -1.0
    replies = [["A kite.", "A ball.", "ball ball ball ball ball ball", "A ball!"],
               ["A ball.", "The ball.", "My ball."],  # all obeyed: a tie
               ["A kite.", "A cat.", "A dog."]]  # none obeyed: a tie
    pairs, counts = make_pairs([inst] * 3, replies)
    assert len(pairs) == 1 and counts["pairs"] == 1
    assert counts["ties, all obeyed"] == 1 and counts["ties, other"] == 1
    assert (pairs[0].chosen, pairs[0].rejected) == ("A ball.",
                                                    "ball ball ball ball ball ball")
    assert (pairs[0].chosen_score, pairs[0].rejected_score) == (1.0, -1.0)
    assert counts["degenerate"] == 1 and counts["replies"] == 10


# Replies of the kind a DPO run with beta = 0.01 trained four times longer wrote on a
# cpu build (issue 27): invented strings that the checkers alone scored as obeying
# "at most N sentences", and that a guard for empty and looping text passed.
HACKED = ["Chirpparparpar0 the bird. Chirpparpar flapparp!",
          "Once Chirpparparpar0 zibble went lollop wobbling the snorkparp.",
          "Tom Chirpparpar0 parparpar ball sparpar"]


def test_the_gibberish_guard_catches_invented_words_and_passes_real_stories(
        valid_stories, data_dir):
    from llm_from_scratch.data.corpus import load_stories

    known = story_words(load_stories("train", data_dir, max_stories=2000))
    asked = (Constraint("max_sentences", 2),)
    inst = Instruction("Write at most 2 sentences.", asked, "", "valid:0")
    for reply in HACKED:
        assert degeneracy(reply) is None  # the old guard: empty or looping only
        assert reply_score(inst, reply) == 1.0  # the checkers alone: obeyed
        assert degeneracy(reply, known) == "gibberish"
        assert reply_score(inst, reply, known) == -1.0
    # held-out stories, checked against words of other (training) stories: real
    # English of this corpus is almost never called gibberish (names included)
    flagged = [s for s in valid_stories if degeneracy(s, known) == "gibberish"]
    assert len(flagged) <= 0.01 * len(valid_stories), flagged[:3]
    first = [" ".join(s.split()[:12]) for s in valid_stories]  # short replies too
    flagged = [s for s in first if degeneracy(s, known) == "gibberish"]
    assert len(flagged) <= 0.02 * len(first), flagged[:3]


def _chat_model(tok, seed: int, context_len: int = 64) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=tok.get_vocab_size(), n_layers=1, n_heads=2,
                         d_model=32, context_len=context_len))


@pytest.fixture(scope="module")
def chat_tok(data_dir):
    from llm_from_scratch.data.prepare import load_or_train

    return add_chat_tokens(load_or_train("smoke", data_dir))


def test_sampling_never_uses_instructions_of_another_split(chat_tok):
    model = _chat_model(chat_tok, 0)
    valid = [Instruction("Write a short story.", (Constraint("dialogue", False),),
                         "", "valid:3")]
    with pytest.raises(ValueError, match="not from the 'train' split"):
        sample_pairs(model, chat_tok, valid, "train", samples=2)
    train = [Instruction(i.prompt, i.constraints, "", "train:0") for i in valid]
    pairs, counts, replies = sample_pairs(model, chat_tok, train, "train",
                                          samples=3, max_new_tokens=8, seed=0)
    assert len(replies[0]) == 3 and counts["replies"] == 3
    assert all(p.source == "train:0" for p in pairs)


def _pairs(n: int) -> list[PreferencePair]:
    names = ["Tom", "Lily", "Sue", "Ben", "Max", "Mia", "Sam", "Zoe"]
    return [PreferencePair(f'Write a short story. Use the word "ball". ({k})',
                           f"{names[k % 8]} had a red ball. It was fun.",
                           f"{names[k % 8]} had a kite.", 1.0, 0.0, f"train:{k}")
            for k in range(n)]


def test_loss_rewards_and_accuracy_match_trls_dpo_trainer(chat_tok, tmp_path):
    """Reference: trl's DPOTrainer.compute_loss (its loss) and the rewards/margins
    and rewards/accuracies it logs, on transformers' LlamaForCausalLM loading our
    exports. Tolerance 1e-4: float32 sums of ~30 log-probabilities in another
    order."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from datasets import Dataset
    from transformers import AutoTokenizer, LlamaForCausalLM
    from trl import DPOConfig, DPOTrainer

    from llm_from_scratch.recipes.sft import save_chat_model

    policy, ref = _chat_model(chat_tok, 1).eval(), _chat_model(chat_tok, 2).eval()
    save_chat_model(policy, tmp_path / "policy", chat_tok)
    save_chat_model(ref, tmp_path / "ref", chat_tok)
    pairs = _pairs(4)
    ds = PairDataset(chat_tok, pairs, 64)
    ds.reference = reference_logps(ref, ds, 4)
    ours = preference_metrics(policy, pair_batches(ds, 4), beta=0.1)
    rows = [{"prompt": [{"role": "user", "content": p.prompt}],
             "chosen": [{"role": "assistant", "content": p.chosen}],
             "rejected": [{"role": "assistant", "content": p.rejected}]}
            for p in pairs]
    trainer = DPOTrainer(
        model=LlamaForCausalLM.from_pretrained(tmp_path / "policy"),
        ref_model=LlamaForCausalLM.from_pretrained(tmp_path / "ref"),
        args=DPOConfig(output_dir=str(tmp_path / "trl"), beta=0.1, report_to=[],
                       use_cpu=True, bf16=False, disable_tqdm=True),
        train_dataset=Dataset.from_list(rows),
        processing_class=AutoTokenizer.from_pretrained(tmp_path / "policy"))
    inputs = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    trainer.model.eval()
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, inputs).item()
    logged = {k: v[-1] for k, v in trainer._metrics["eval"].items()}
    assert abs(ours["loss"] - math.log(2)) > 1e-3  # two different models
    assert ours["loss"] == pytest.approx(loss, abs=1e-4)
    assert ours["margin"] == pytest.approx(logged["rewards/margins"], abs=1e-4)
    assert ours["accuracy"] == pytest.approx(logged["rewards/accuracies"], abs=1e-6)


def test_load_pairs_names_the_row_and_its_problem(tmp_path):
    good = save_pairs(tmp_path / "good.jsonl", _pairs(2), {"made": "by hand"})
    pairs, settings = load_pairs(good)
    assert pairs == _pairs(2) and settings == {"made": "by hand"}
    cases = {'{"prompt": "p", "chosen": "a"}': "row 2: rejected missing",
             "not json": "row 2: not JSON",
             "[1, 2]": "row 2: not a JSON object",
             '{"prompt": "p", "chosen": "a", "rejected": "a"}': "row 2: chosen and "
             "rejected are the same",
             '{"prompt": "p", "chosen": " ", "rejected": "b"}': "row 2: chosen missing "
             "or empty"}
    row = json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"})
    for bad, message in cases.items():
        path = tmp_path / "bad.jsonl"
        path.write_text(row + "\n" + bad + "\n")
        with pytest.raises(PairsFormatError, match=message):
            load_pairs(path)
    # a reply that ended at once is a fair one to reject (a sweep's seed sampled one)
    quiet = tmp_path / "quiet.jsonl"
    quiet.write_text(json.dumps({"prompt": "p", "chosen": "a", "rejected": ""}) + "\n")
    assert load_pairs(quiet)[0][0].rejected == ""
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(PairsFormatError, match="not one pair"):
        load_pairs(tmp_path / "empty.jsonl")


@pytest.fixture(scope="module")
def sft_dir(tmp_path_factory, chat_tok):
    from llm_from_scratch.recipes.sft import save_chat_model

    return save_chat_model(_chat_model(chat_tok, 0), tmp_path_factory.mktemp("sft"),
                           chat_tok)


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    return save_pairs(tmp_path_factory.mktemp("pairs") / "pairs.jsonl", _pairs(8),
                      {})


def _weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_smoke_dpo_resumes_exactly(sft_dir, pairs_file, tmp_path, data_dir):
    run = dict(sft_dir=sft_dir, pairs_file=pairs_file, data_path=data_dir,
               max_steps=4, checkpoint_interval=2, eval_interval=2, batch_size=4,
               heldout_prompts=4, samples=2, max_new_tokens=8)
    whole = dpo("smoke", out_dir=tmp_path / "a", export_dir=tmp_path / "ea", **run)
    stopped = dpo("smoke", out_dir=tmp_path / "b", export_dir=tmp_path / "eb",
                  stop_at_step=2, **run)
    assert stopped.result.stopped == "stop_at_step" and stopped.export is None
    resumed = dpo("smoke", out_dir=tmp_path / "b", export_dir=tmp_path / "eb", **run)
    assert resumed.result.resumed_from == 2 and resumed.result.step == 4
    a, b = _weights(whole.model), _weights(resumed.model)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    losses = [r["loss"] for r in whole.result.rows("loss")]
    assert losses == [r["loss"] for r in resumed.result.rows("loss")]
    assert losses[0] == pytest.approx(math.log(2), abs=1e-6)  # policy = reference
    assert [r["step"] for r in whole.heldout()] in ([0, 2, 4], [])  # [] if all tied
    assert whole.heldout() == resumed.heldout()
    assert (tmp_path / "ea" / "config.json").is_file()


def llmfs(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llm_from_scratch", *args],
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ))


def test_llmfs_dpo_trains_and_refuses_bad_input_in_one_line(sft_dir, pairs_file,
                                                            tmp_path, data_dir):
    from tokenizers import Tokenizer

    from llm_from_scratch.model.hf import load_hf, save_hf

    common = ["--profile", "smoke", "--data", str(data_dir)] if data_dir else [
        "--profile", "smoke"]
    out = llmfs("dpo", *common, "--sft", str(sft_dir), "--pairs", str(pairs_file),
                "--max-steps", "2", "--batch-size", "4", "--heldout-prompts", "4",
                "--samples", "2", "--max-new-tokens", "8", "--out",
                str(tmp_path / "run"))
    assert out.returncode == 0, out.stderr
    assert "model:" in out.stdout
    plain = Tokenizer.from_file(str(sft_dir / "tokenizer.json"))
    plain = Tokenizer.from_str(plain.to_str().replace("<|user|>", "<|someone|>"))
    save_hf(load_hf(sft_dir), tmp_path / "plain", plain)
    bad_row = tmp_path / "bad.jsonl"
    bad_row.write_text(json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"})
                       + "\n" + json.dumps({"prompt": "p", "chosen": "a"}) + "\n")
    for args, message in ((["--sft", str(tmp_path / "plain")], "no chat tokens"),
                          (["--pairs", str(bad_row)], "row 2: rejected missing"),
                          (["--beta", "0"], "beta must be a positive number")):
        out = llmfs("dpo", *common, *args)
        assert out.returncode == 2, out.stderr
        assert out.stderr.strip().count("\n") == 0 and message in out.stderr
