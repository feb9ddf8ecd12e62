"""Profiles are defined once and a bad name is a clear, one-line error."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import torch

from llm_from_scratch.profiles import (PROFILE_NAMES, PROFILES, Profile,
                                       UnknownProfileError, get_profile,
                                       resolve_profile_name)

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
