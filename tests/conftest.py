"""Shared fixtures. Tests that need text use the real TinyStories files from LLMFS_DATA."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # test this checkout's package and tools

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may wait on the network


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The local TinyStories folder ($LLMFS_DATA); the tests fail without it."""
    raw = os.environ.get("LLMFS_DATA")
    if not raw or not Path(raw).is_dir():
        pytest.fail("these tests read real TinyStories text: set LLMFS_DATA to a folder "
                    "of TinyStories files (on the project's machines: ../shared/data)")
    return Path(raw)


@pytest.fixture(scope="session")
def valid_stories(data_dir) -> list[str]:
    from llm_from_scratch.data import load_stories

    return load_stories("valid", path=data_dir)


@pytest.fixture
def one_thread():
    """Tiny models run faster on one thread: splitting their small matrix products
    costs more synchronisation than it saves (and on a busy 2-core machine, much
    more). Restored after the test. Use: pytestmark = usefixtures("one_thread")."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
