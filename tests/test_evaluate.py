"""Chapter 10's evaluation: bits per byte, the lm-eval model, tasks, contamination, CLI.

The references are lm-eval 0.4.x itself (its rolling windows, its task loader, its own
`hf` model on our exported directory) and direct computations with the model.
"""

from __future__ import annotations

import json
import logging
import os
import random
import subprocess
import sys

import pytest
import torch

from llm_from_scratch.evaluation import harness, report, tasks
from llm_from_scratch.model.hf import save_hf
from llm_from_scratch.model.gpt import GPT, GPTConfig

pytestmark = pytest.mark.usefixtures("one_thread")
logging.getLogger("lm_eval").setLevel(logging.ERROR)


@pytest.fixture(scope="module")
def tok(valid_stories):
    from llm_from_scratch.data.tokenizer import train_hf_tokenizer

    return train_hf_tokenizer(valid_stories[:200], 320)


@pytest.fixture(scope="module")
def model(tok):
    """A small model whose distributions are far from uniform (embeddings of std 0.3),
    so that a token miscounted or misplaced moves every figure."""
    torch.manual_seed(0)
    m = GPT(GPTConfig(vocab_size=tok.get_vocab_size(), n_layers=2, n_heads=4,
                      n_kv_heads=2, d_model=64, context_len=64))
    with torch.no_grad():
        m.embed_tokens.weight.normal_(0, 0.3)
    return m.eval()


@pytest.fixture(scope="module")
def model_dir(model, tok, tmp_path_factory):
    return save_hf(model, tmp_path_factory.mktemp("model"), tok)


@pytest.fixture(scope="module")
def lm(model, tok):
    return harness.LLMFSLM(model=model, tokenizer=tok, batch_size=8)


def request(kind: str, *args):
    from lm_eval.api.instance import Instance

    return Instance(request_type=kind, doc={}, arguments=args, idx=0)


def test_rolling_windows_are_lm_evals_and_predict_every_token_once():
    from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

    rng = random.Random(0)
    for _ in range(200):
        ids = [rng.randrange(1, 50) for _ in range(rng.randrange(1, 40))]
        context = rng.randrange(1, 12)
        ours = harness.rolling_windows(ids, 0, context)
        theirs = [(c + p, len(p)) for c, p in map(
            make_disjoint_window, get_rolling_token_windows(ids, 0, context, 1))]
        assert ours == theirs
        assert [t for seq, n in ours for t in seq[-n:]] == ids
        assert all(len(seq) - 1 <= context for seq, _ in ours)


def test_registered_loglikelihood_is_the_direct_sum_and_is_greedy_is_right(
        lm, model, tok):
    eot = tok.token_to_id("<|endoftext|>")
    context = "Once upon a time, there was a"
    ids = tok.encode(context).ids
    greedy = []  # three tokens the model would produce greedily
    with torch.no_grad():
        for _ in range(3):
            greedy.append(int(model(torch.tensor([ids + greedy]))[0][0, -1].argmax()))
    cases = [(context, tok.decode(greedy)), (context, " dog and a cat"),
             (context + " ", "little girl"), ("", "Once upon a time")]
    got = lm.loglikelihood([request("loglikelihood", c, x) for c, x in cases])
    for (c, x), (lp, is_greedy) in zip(cases, got):
        ctx, cont = lm.encode_pair(c, x)
        seq = ctx + cont
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([seq]))[0][0], -1)
        pos = range(len(ctx), len(seq))
        direct = sum(logp[i - 1, seq[i]].item() for i in pos)
        argmax = all(int(logp[i - 1].argmax()) == seq[i] for i in pos)
        # float32 logits; batched (padded) and single forward passes round differently
        assert lp == pytest.approx(direct, abs=1e-4), (c, x)
        assert is_greedy == argmax, (c, x)
    assert got[0][1] and tok.decode(lm.encode_pair(*cases[0])[1]) == cases[0][1]
    assert lm.encode_pair("", "Once")[0] == [eot]
    assert lm.encode_pair(context + " ", "little")[1][0] == tok.encode(" little").ids[0]


def test_generate_until_is_greedy_generation_cut_at_the_stop_string(lm, model, tok):
    from llm_from_scratch.inference.generate import generate

    context = "Once upon a time"
    full = tok.decode(generate(model, [tok.encode(context).ids], 20, temperature=0)[0])
    stop = full[len(full) // 2:][:2]
    out, = lm.generate_until([request("generate_until", context,
                                      {"until": [stop], "max_gen_toks": 20})])
    assert out == full.split(stop)[0]


def test_bits_per_byte_three_ways_agree(lm, model, tok, model_dir, valid_stories,
                                        tmp_path):
    import lm_eval
    from lm_eval.tasks import TaskManager

    stories = valid_stories[:12]  # several longer than the 64-token context
    eot = tok.token_to_id("<|endoftext|>")
    package = harness.bits_per_byte_of(model, tok, stories, eot, batch_size=8)["bpb"]
    path = harness.bpb_task(tmp_path, stories)
    ours = harness.run_tasks(lm, [path])["tinystories_bpb"]["metrics"]["bits_per_byte"]
    hf = lm_eval.simple_evaluate(
        model="hf", model_args=f"pretrained={model_dir},dtype=float32",
        tasks=["tinystories_bpb"], device="cpu", batch_size=4,
        task_manager=TaskManager(include_path=str(tmp_path), include_defaults=False))
    theirs = hf["results"]["tinystories_bpb"]["bits_per_byte,none"]
    # Same windows and bytes; float32 logits from two implementations differ in the
    # last bits, averaged over thousands of tokens: far below 1e-4.
    assert ours == pytest.approx(package, abs=1e-4)
    assert theirs == pytest.approx(package, abs=1e-4)


def test_tasks_build_deterministically_from_validation_stories_and_load_offline(
        lm, valid_stories, tmp_path):
    from llm_from_scratch.config.profiles import get_profile

    sizes = get_profile("smoke").eval
    stories = valid_stories[:150]
    a = tasks.write_tasks(tmp_path / "a", stories, sizes)
    b = tasks.write_tasks(tmp_path / "b", stories, sizes)
    assert set(a) == set(tasks.TASKS) - {"instruct"}  # no instructions given
    for name in a:
        data = a[name].with_suffix(".jsonl")
        assert data.read_bytes() == b[name].with_suffix(".jsonl").read_bytes()
        assert (a[name].read_text().replace(str(tmp_path / "a"), "")
                == b[name].read_text().replace(str(tmp_path / "b"), ""))
    cloze = [json.loads(x) for x in a["cloze"].with_suffix(".jsonl").open()]
    final = [json.loads(x) for x in a["final_word"].with_suffix(".jsonl").open()]
    assert len(cloze) == sizes.cloze_items and len(final) > 10
    for r in cloze + final:
        story = stories[int(r["id"].split("-")[1])]
        answer = r["target"] if "target" in r else " " + r["choices"][r["label"]]
        assert r["context"] in story and answer.strip() in story
    for r in cloze:
        assert len(set(r["choices"])) == 4
        assert story_ends_with(stories[int(r["id"].split("-")[1])],
                               r["choices"][r["label"]])
    out = harness.run_tasks(lm, [a["cloze"], a["final_word"]], limit=5)
    assert {"acc", "acc_stderr", "acc_norm"} <= out["tinystories_cloze"]["metrics"].keys()
    assert len(out["tinystories_final_word"]["items"]) == 5


def test_instruction_task_scores_greedy_replies_with_chapter_08s_checkers(
        model, tok, valid_stories, tmp_path):
    """The generate_until task through lm-eval against the package's own path
    (sft.generate_replies + follow_rates) on the same model and instructions."""
    import dataclasses

    from llm_from_scratch.posttrain.chat import add_chat_tokens, grow_vocab, render_chat
    from llm_from_scratch.posttrain.instructions import build_instructions
    from llm_from_scratch.recipes.sft import follow_rates, generate_replies

    chat_tok = add_chat_tokens(tok)
    config = dataclasses.replace(model.config, context_len=256)
    chat_model = grow_vocab(GPT(config), chat_tok.get_vocab_size()).eval()
    insts = build_instructions(  # prompts that leave room for a reply
        valid_stories[:40], "valid",
        lambda p, r: len(chat_tok.encode(tasks.chat_prompt(p) + r).ids), 200,
        per_story=1, max_constraints=2, seed=0)[:10]
    assert len(insts) == 10
    assert (chat_tok.encode(tasks.chat_prompt(insts[0].prompt)).ids
            == render_chat(chat_tok, [{"role": "user", "content": insts[0].prompt}],
                           add_generation_prompt=True))
    lm = harness.LLMFSLM(model=chat_model, tokenizer=chat_tok, batch_size=4)
    for chat in (True, False):
        path = tasks.instruction_task(tmp_path, insts, chat, chat_model.config.context_len)
        name = harness.task_name(path)
        out = harness.run_tasks(lm, [path])[name]
        replies = generate_replies(chat_model, chat_tok, [i.prompt for i in insts],
                                   chat=chat, batch_size=4)
        assert [x["reply"] for x in out["items"]] == replies
        rates = follow_rates(insts, replies)
        assert out["metrics"]["follow"] == pytest.approx(rates["all"]["rate"])
        for x, inst, reply in zip(out["items"], insts, replies):
            verdicts = inst.obeyed_by(reply)
            assert x["obeyed"] == pytest.approx(sum(verdicts.values()) / len(verdicts))


def story_ends_with(story: str, sentence: str) -> bool:
    return story.strip().endswith(sentence)


def test_contamination_check_finds_planted_training_text(valid_stories, data_dir):
    from llm_from_scratch.data.corpus import load_stories

    train = load_stories("train", path=data_dir, max_stories=300)
    items = [report.item_text(r) for r in tasks.cloze_items(valid_stories[:200], 30)]
    planted = [report.item_text(r) for r in tasks.cloze_items(train, 5, seed=3)]
    half = train[7][:len(train[7]) // 2]  # half a training story inside a new one
    planted.append(valid_stories[500] + " " + half)
    overlap = report.ngram_overlap(items + planted, train, n=8)
    assert (overlap[-6:-1] == 1.0).all()
    assert overlap[-1] > 2 * overlap[:-6].max()  # a shared passage stands out
    assert (overlap[:-6] < 0.5).all()  # real validation items: formulaic phrases only


def test_paired_difference_judges_a_difference_against_its_error():
    same = report.paired_difference([1, 0, 1, 0] * 10, [1, 0, 1, 0] * 10)
    assert same["difference"] == 0 and same["verdict"] == "within noise"
    better = report.paired_difference([1] * 30 + [0] * 10, [1] * 10 + [0] * 30)
    assert better["difference"] == 0.5 and better["verdict"] == "real"
    assert better["stderr"] == pytest.approx(0.5 * (40 / 39) ** 0.5 / 40 ** 0.5)
    noisy = report.paired_difference([1, 0] * 10, [0, 1] * 5 + [1, 0] * 5)
    assert noisy["verdict"] == "within noise"
    with pytest.raises(ValueError):
        report.paired_difference([1, 0], [1])


def test_sample_stats_count_distinct_and_repeated_ngrams():
    loop = report.sample_stats(["the cat sat the cat sat the cat sat"], ended=[False])
    assert loop["distinct_1"] == pytest.approx(3 / 9)
    assert loop["repetition"] == pytest.approx(1 - 3 / 6)
    assert loop["mean_words"] == 9 and loop["ended"] == 0.0
    fresh = report.sample_stats(["a b c d e", "f g h i j"])
    assert fresh["distinct_1"] == fresh["distinct_2"] == 1.0
    assert fresh["repetition"] == 0.0


def test_report_card_has_reserved_rows_and_round_trips(tmp_path):
    results = {"tinystories_cloze": {"metrics": {"acc_norm": 0.5, "acc_norm_stderr": 0.1,
                                                 "acc": 0.4, "acc_stderr": 0.1},
                                     "items": [{}] * 25}}
    rows = [report.card_row("pretrained", "chapter 04", results, 1.5),
            report.missing_row("DPO", "chapter 09", "artifacts/x/dpo")]
    text = report.format_card(rows)
    assert "0.500 +-0.100" in text and "not run" in text.splitlines()[-1]
    saved = json.loads(report.save_card(rows, tmp_path / "card.json", profile="x").read_text())
    assert saved["rows"] == rows and saved["profile"] == "x"


def llmfs(*args: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llm_from_scratch", "eval", *args],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})


def test_eval_cli_prints_the_card_row_and_rejects_bad_input(model_dir, data_dir,
                                                            tmp_path):
    env = dict(LLMFS_DATA=str(data_dir), LLMFS_HOME=str(tmp_path / "home"))
    out = llmfs("--model", str(model_dir), "--profile", "smoke", "--tasks",
                "cloze,final_word", "--limit", "4", "--out", str(tmp_path / "c.json"),
                **env)
    assert out.returncode == 0, out.stderr
    row = json.loads(out.stdout.split("JSON: ", 1)[1])
    assert row["tasks"]["cloze"]["n"] == 4 and row["tasks"]["final_word"]["n"] == 4
    assert json.loads((tmp_path / "c.json").read_text())["rows"] == [row]
    assert (tmp_path / "home" / "smoke" / "eval" / "tasks" / "cloze.yaml").exists()
    broken = tmp_path / "broken.yaml"
    broken.write_text("task: [unclosed\n")
    for args, words in [(["--model", str(model_dir), "--tasks", "arithmetic"],
                         "unknown task"),
                        (["--model", str(tmp_path)], "not a model folder"),
                        (["--model", str(model_dir), "--tasks", str(broken)],
                         "not a task file")]:
        bad = llmfs(*args, "--profile", "smoke", **env)
        assert bad.returncode == 2, bad.stderr
        assert bad.stderr.strip().count("\n") == 0 and words in bad.stderr
