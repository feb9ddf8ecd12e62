"""The pretraining recipe: what names a run, and what its run folder holds."""

from __future__ import annotations

import dataclasses
import shutil

import pytest

from llm_from_scratch.model.gpt import GPTConfig
from llm_from_scratch.recipes.pretrain import data_identity, run_id, split_train_options
from llm_from_scratch.config.profiles import get_profile


@pytest.fixture
def shard_copies(tmp_path):
    """Two folders with the same bytes under different names, and one that differs."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "train_000.bin").write_bytes(b"\x01\x00" * 100)
    (a / "valid_000.bin").write_bytes(b"\x02\x00" * 50)
    shutil.copy(a / "train_000.bin", b / "shard-t.bin")
    shutil.copy(a / "valid_000.bin", b / "shard-v.bin")
    return ({"train": [a / "train_000.bin"], "valid": [a / "valid_000.bin"]},
            {"train": [b / "shard-t.bin"], "valid": [b / "shard-v.bin"]})


class Tok:
    """The one method of a tokenizer that its digest reads."""

    def __init__(self, text: str):
        self.text = text

    def to_str(self) -> str:
        return self.text


def test_the_run_id_follows_the_data_content_not_the_file_names(shard_copies):
    P = get_profile("smoke")
    mconfig = GPTConfig.from_profile(P.model, 512)
    first, renamed = (data_identity(Tok("tok"), s) for s in shard_copies)
    assert first == renamed
    rid = run_id(P.train.loop, mconfig, P.train, first)
    assert rid == run_id(P.train.loop, mconfig, P.train, renamed)
    other_tok = data_identity(Tok("another tokenizer"), shard_copies[0])
    assert run_id(P.train.loop, mconfig, P.train, other_tok) != rid
    changed = dataclasses.replace(P.train.loop, lr=P.train.loop.lr / 2)
    assert run_id(changed, mconfig, P.train, first) != rid
    reporting = dataclasses.replace(P.train.loop, eval_interval=7, keep_checkpoints=9)
    assert run_id(reporting, mconfig, P.train, first) == rid  # numbers unchanged


def test_overrides_go_to_the_loop_or_to_the_recipe():
    loop, recipe = split_train_options({"lr": 1e-3, "precision": "fp32",
                                        "batch_size": 4, "seed": 2})
    assert loop == {"lr": 1e-3, "precision": "fp32"}
    assert recipe == {"batch_size": 4, "seed": 2}


def test_a_checkpoint_loads_with_its_run_folders_tokenizer(tmp_path, valid_stories):
    """llmfs generate on a checkpoint of a run: the run folder's tokenizer.json, no
    corpus and no profile (loading never retrains a tokenizer)."""
    from llm_from_scratch.data.batches import ShuffledBatches
    from llm_from_scratch.inference.generate import load_model
    from llm_from_scratch.data.tokenizer import train_hf_tokenizer
    from llm_from_scratch.config.training import TrainConfig
    from llm_from_scratch.training.loop import train
    from tests.test_train import Windows, tiny_model

    tok = train_hf_tokenizer(valid_stories[:100], 300)
    result = train(tiny_model(vocab_size=300), ShuffledBatches(Windows(), 4),
                   TrainConfig(max_steps=2),
                   out_dir=tmp_path, run_files={"tokenizer.json": tok.to_str()},
                   meta={"profile": "no-such-profile"})
    model, loaded, folder = load_model(result.checkpoint)
    assert folder == result.checkpoint and loaded.to_str() == tok.to_str()
