"""Glue used by every chapter: progress bars, artifacts, seeds."""

from __future__ import annotations

import time

import torch

from llm_from_scratch.config import runtime as utils


def test_progress_in_book_build_prints_one_plain_line(monkeypatch, capsys):
    monkeypatch.setenv("LLMFS_BOOK_BUILD", "1")
    total = sum(x for x in utils.progress(range(1000), desc="tokenize"))
    out, err = capsys.readouterr()
    assert total == sum(range(1000))
    assert out.count("\n") == 1 and out.startswith("tokenize: 1,000/1,000 it in 00:0")
    assert "<" not in out, "an estimate of the time left is meaningless on a page"
    assert "\r" not in out + err and "\x1b" not in out + err and out.isascii()


def test_progress_as_a_manual_bar_in_book_build(monkeypatch, capsys):
    monkeypatch.setenv("LLMFS_BOOK_BUILD", "1")
    with utils.progress(total=3, desc="steps") as bar:
        for _ in range(3):
            bar.update(1)
    out = capsys.readouterr().out
    assert out.startswith("steps: 3/3 it in ") and out.count("\n") == 1


def test_progress_stopped_early_says_so_in_book_build(monkeypatch, capsys):
    monkeypatch.setenv("LLMFS_BOOK_BUILD", "1")
    with utils.progress(total=100, desc="training", unit="step") as bar:
        bar.update(2)
        bar.set_postfix_str("loss=6.251")
    out = capsys.readouterr().out
    assert out.startswith("training: stopped at 2/100 steps in ")
    assert out.rstrip().endswith("loss=6.251") and "<" not in out


def test_a_disabled_bar_closes_quietly_in_book_build(monkeypatch, capsys):
    # Every rank but 0 of a distributed run disables its bars; closing one used to
    # raise AttributeError (tqdm's __init__ returns before it stores the file).
    monkeypatch.setenv("LLMFS_BOOK_BUILD", "1")
    bar = utils.progress(total=3, desc="training", disable=True)
    bar.update(3)
    bar.close()
    assert capsys.readouterr().out == ""


def test_artifacts_dir_follows_llmfs_home(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMFS_HOME", str(tmp_path))
    path = utils.artifacts_dir("smoke")
    assert path == tmp_path / "smoke" and path.is_dir()


def test_set_seed_makes_torch_reproducible():
    utils.set_seed(123)
    a = torch.randn(4)
    utils.set_seed(123)
    assert torch.equal(a, torch.randn(4))


def test_pick_device_honours_a_preference():
    assert utils.pick_device("cpu") == torch.device("cpu")


def test_a_resumed_bar_rates_only_the_work_it_did_and_plurals_its_unit(monkeypatch,
                                                                        capsys):
    """A run resumed at its last step did nothing: it says so, with no rate (it used
    to print millions of steps a second); one resumed midway rates its own steps."""
    monkeypatch.setenv("LLMFS_BOOK_BUILD", "1")
    with utils.progress(total=200, initial=200, desc="training", unit="step"):
        pass
    with utils.progress(total=10, initial=4, desc="training", unit="story") as bar:
        time.sleep(0.1)
        bar.update(6)
    done, midway = capsys.readouterr().out.splitlines()
    assert done == "training: 200/200 steps, all done before (resumed at 200)"
    assert midway.startswith("training: 10/10 stories in 00:0")
    assert "(resumed at 4)" in midway and "story/s" in midway
    rate = float(midway.split(", ")[-1].split()[0].replace(",", ""))
    assert rate < 60  # six stories in 0.1 s or more; counting the four before, 100
