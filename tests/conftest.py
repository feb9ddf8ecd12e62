"""Shared fixtures. Tests that need text read real TinyStories, bounded, from the data
path: the folder in LLMFS_DATA when it is set, else the Hugging Face hub (or the
dataset named by LLMFS_HUB_DATASET: a hub id, or a local folder in the hub's layout).
No test depends on how many stories a particular source holds."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # test this checkout's package and tools

if os.environ.get("LLMFS_DATA"):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # local data: no test waits on the hub
# Under `make test` a claim that does not hold fails its chapter (llm_from_scratch.book.claims)
os.environ.setdefault("LLMFS_CLAIMS", "strict")

TEST_STORIES = 1000  # at most this many stories per split for the tests that read text
GPT2_FILES = ("gpt2-vocab.json", "gpt2-merges.txt")
GPT2_SOURCE = "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/"


@pytest.fixture(scope="session")
def data_dir() -> Path | None:
    """The local TinyStories folder ($LLMFS_DATA), or None where the tests read the
    hub; the tests that need text fail, saying how to provide it, when neither is
    there."""
    from llm_from_scratch.data.corpus import hub_dataset, hub_reachable

    raw = os.environ.get("LLMFS_DATA")
    if raw:
        if not Path(raw).is_dir():
            pytest.fail(f"LLMFS_DATA={raw} is not a directory")
        return Path(raw)
    if Path(hub_dataset()).is_dir() or hub_reachable():
        return None
    pytest.fail("these tests read real TinyStories text: set LLMFS_DATA to a folder "
                "of TinyStories files (on the project's machines: ../shared/data), or "
                "run where the Hugging Face hub is reachable")


@pytest.fixture(scope="session")
def valid_stories(data_dir) -> list[str]:
    from llm_from_scratch.data.corpus import load_stories

    return load_stories("valid", path=data_dir, max_stories=TEST_STORIES)


@pytest.fixture(scope="session")
def gpt2_files(data_dir) -> tuple[Path, Path]:
    """GPT-2's vocabulary and merges (see the README): gpt2-vocab.json and
    gpt2-merges.txt in the data folder or in $LLMFS_GPT2."""
    folders = [Path(p) for p in (os.environ.get("LLMFS_GPT2"), data_dir) if p]
    for folder in folders:
        files = tuple(folder / name for name in GPT2_FILES)
        if all(f.is_file() for f in files):
            return files
    pytest.fail(f"GPT-2's reference files {' and '.join(GPT2_FILES)} are in none of "
                f"{[str(f) for f in folders] or 'LLMFS_DATA, LLMFS_GPT2 (both unset)'}: "
                f"download encoder.json and vocab.bpe from {GPT2_SOURCE} and save them "
                "under those names in LLMFS_GPT2 or the data folder")


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
