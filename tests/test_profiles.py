"""Profiles are defined once and a bad name is a clear, one-line error."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import torch

from llm_from_scratch.config.profiles import (PROFILE_NAMES, PROFILES,
                                              UnknownProfileError, get_profile,
                                              resolve_profile_name)
from llm_from_scratch.config.sizes import Profile

ROOT = Path(__file__).resolve().parent.parent


def test_auto_follows_cuda_availability():
    assert resolve_profile_name("auto") == ("gpu" if torch.cuda.is_available() else "cpu")
    assert get_profile().name == resolve_profile_name("auto")


def test_every_profile_sets_every_section():
    hints = typing.get_type_hints(Profile)
    sections = {name: t for name, t in hints.items() if dataclasses.is_dataclass(t)}
    assert sections, "Profile has no sections"
    for name, profile in PROFILES.items():
        assert profile.name == name
        for section, kind in sections.items():
            assert isinstance(getattr(profile, section), kind), (name, section)


def test_every_profile_bounds_its_reading_and_smoke_reads_least():
    sizes = {name: PROFILES[name].data for name in ("smoke", "cpu", "gpu")}
    for split in ("max_train_stories", "max_valid_stories"):
        counts = [getattr(sizes[name], split) for name in ("smoke", "cpu", "gpu")]
        assert all(isinstance(n, int) and n > 0 for n in counts), split
        assert counts == sorted(counts), split


def test_unknown_profile_names_the_valid_ones():
    with pytest.raises(UnknownProfileError) as info:
        get_profile("large")
    message = str(info.value)
    assert "'large'" in message and all(name in message for name in PROFILE_NAMES)


def test_sections_can_be_overridden():
    small = dataclasses.replace(PROFILES["cpu"].data, max_train_stories=7)
    assert get_profile("cpu", data=small).data.max_train_stories == 7


def test_book_build_rejects_an_unknown_profile_in_one_line():
    result = subprocess.run([sys.executable, "tools/book.py", "--profile", "huge"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown profile 'huge'" in lines[0], result.stderr


def test_seed_and_precision_overrides_shift_the_named_sections_only():
    from llm_from_scratch.config.profiles import with_overrides

    cpu = PROFILES["cpu"]
    every = with_overrides(cpu, {"LLMFS_SEED": "2", "LLMFS_PRECISION": "fp32"})
    assert (every.train.seed, every.sft.seed, every.eval.seed, every.seed_offset) == (
        cpu.train.seed + 2, cpu.sft.seed + 2, cpu.eval.seed + 2, 2)
    assert {every.train.loop.precision, every.sft.loop.precision,
            every.dpo.loop.precision, every.precision} == {"fp32"}
    one = with_overrides(cpu, {"LLMFS_SEED": "sft=1", "LLMFS_PRECISION": "sft=bf16"})
    assert one.train == cpu.train and one.dpo == cpu.dpo and one.seed_offset == 0
    assert (one.sft.seed, one.sft.loop.precision) == (cpu.sft.seed + 1, "bf16")
    assert with_overrides(cpu, {}) is cpu
    assert with_overrides(cpu, {"LLMFS_SEED": "0"}) is cpu
    for env, message in [({"LLMFS_SEED": "two"}, "not an integer"),
                         ({"LLMFS_SEED": "sfx=1"}, "'sfx' is not one of"),
                         ({"LLMFS_PRECISION": "fp8"}, "'fp8' is not one of"),
                         ({"LLMFS_PRECISION": "data=fp32"}, "'data' is not one of")]:
        with pytest.raises(ValueError, match=message):
            with_overrides(cpu, env)


def test_get_profile_reads_the_overrides_from_the_environment(monkeypatch):
    monkeypatch.setenv("LLMFS_SEED", "chapter=3")
    assert get_profile("smoke").seed_offset == 3
    monkeypatch.delenv("LLMFS_SEED")
    assert get_profile("smoke") is PROFILES["smoke"]
