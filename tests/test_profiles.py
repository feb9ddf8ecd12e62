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


def test_smoke_is_never_bigger_than_cpu():
    smoke, cpu = PROFILES["smoke"].data, PROFILES["cpu"].data
    assert smoke.max_stories is not None
    assert cpu.max_stories is None or smoke.max_stories <= cpu.max_stories


def test_unknown_profile_names_the_valid_ones():
    with pytest.raises(UnknownProfileError) as info:
        get_profile("large")
    message = str(info.value)
    assert "'large'" in message and all(name in message for name in PROFILE_NAMES)


def test_sections_can_be_overridden():
    small = dataclasses.replace(PROFILES["cpu"].data, max_stories=7)
    assert get_profile("cpu", data=small).data.max_stories == 7


def test_book_build_rejects_an_unknown_profile_in_one_line():
    result = subprocess.run([sys.executable, "tools/book.py", "--profile", "huge"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown profile 'huge'" in lines[0], result.stderr
