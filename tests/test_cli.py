"""The command line reports the run configuration and rejects bad input clearly."""

from __future__ import annotations

import subprocess
import sys

import pytest


def llmfs(*args: str, **env) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "llm_from_scratch", *args],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})


def test_info_reports_profile_and_data(tmp_path):
    out = llmfs("info", "--profile", "smoke", LLMFS_DATA=str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "profile:   smoke" in out.stdout and str(tmp_path) in out.stdout


@pytest.mark.parametrize("args,choices", [
    (["info", "--profile", "huge"], "'smoke', 'cpu', 'gpu', 'auto'"),
    (["generate", "--prompt", "Hi", "--dtype", "fp8"], "'fp32', 'bf16'"),
    (["generate", "--prompt", "Hi", "--device", "gpu"], "cpu, cuda, cuda:N, mps"),
    (["train", "--precision", "fp8"], "'fp32', 'bf16', 'fp16'"),
])
def test_a_flag_outside_its_choices_is_a_one_line_error_naming_them(args, choices):
    out = llmfs(*args)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip().count("\n") == 0 and choices in out.stderr, out.stderr


def test_profile_names_are_case_insensitive():
    out = llmfs("info", "--profile", "SMOKE")
    assert out.returncode == 0 and "profile:   smoke" in out.stdout, out.stderr


def test_precision_choices_are_the_trainers():
    from llm_from_scratch.__main__ import CHOICES
    from llm_from_scratch.training.precision import PRECISIONS

    assert set(CHOICES["precision"]) == {*PRECISIONS, "auto"}


# --- llmfs generate -------------------------------------------------------------

@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, valid_stories):
    """A small random model with a tokenizer of real stories, in HF's layout."""
    import torch

    from llm_from_scratch.model.hf import save_hf
    from llm_from_scratch.model.gpt import GPT, GPTConfig
    from llm_from_scratch.data.tokenizer import train_hf_tokenizer

    tok = train_hf_tokenizer(valid_stories[:200], 320)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=320, n_layers=2, n_heads=4, n_kv_heads=2,
                          d_model=64, context_len=64))
    return save_hf(model, tmp_path_factory.mktemp("model"), tok)


def test_generate_streams_text_and_reports_its_speed(model_dir):
    out = llmfs("generate", "--model", str(model_dir), "--prompt", "Once upon a time",
                "--max-new-tokens", "12", "--seed", "1", "--no-stop")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Once upon a time")
    assert "12 tokens in" in out.stderr and "tokens/s" in out.stderr


def test_generate_greedy_prints_what_the_package_generates(model_dir):
    from llm_from_scratch.inference.generate import generate, load_model

    model, tok, _ = load_model(model_dir)
    ids = tok.encode("The dog").ids
    expected = "The dog" + tok.decode(generate(model, [ids], 20, temperature=0)[0])
    out = llmfs("generate", "--model", str(model_dir), "--prompt", "The dog",
                "--greedy", "--max-new-tokens", "20", "--no-stop")
    assert out.returncode == 0, out.stderr
    assert out.stdout == expected + "\n"


def test_generate_batches_several_prompts(model_dir):
    out = llmfs("generate", "--model", str(model_dir), "--prompt", "Tom",
                "--prompt", "Lily went to the park", "--max-new-tokens", "5")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("=== 1: Tom") and "\n=== 2: Lily went" in out.stdout


@pytest.mark.parametrize("args,message", [
    (["--max-new-tokens", "500"], "context_len"),
    (["--temperature", "-1"], "temperature"),
    (["--top-p", "2"], "top_p"),
    (["--prompt", "Tom and Lily played in the garden all day. " * 8], "context_len"),
])
def test_generate_rejects_requests_that_cannot_run_in_one_line(model_dir, args,
                                                               message):
    out = llmfs("generate", "--model", str(model_dir), "--prompt", "Hi", *args)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip().count("\n") == 0 and message in out.stderr


def test_generate_without_a_model_says_how_to_make_one(tmp_path):
    out = llmfs("generate", "--profile", "smoke", "--prompt", "Hi",
                LLMFS_HOME=str(tmp_path))
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0
    assert "llmfs train --profile smoke" in out.stderr
    out = llmfs("generate", "--model", str(tmp_path), "--prompt", "Hi")
    assert out.returncode == 2 and "not a model folder" in out.stderr
