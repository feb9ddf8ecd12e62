"""Where TinyStories comes from: a local folder, else the hub, else a clear error.

No count here belongs to one data folder: the expected numbers are counted from the
files under test, which are LLMFS_DATA's or, where the tests read the hub, files
written here from real stories.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llm_from_scratch.data import corpus as data
from llm_from_scratch.data.corpus import DataNotFoundError, load_stories, local_data_dir


def _write(folder: Path, name: str, stories: list[str], end: str = "\n") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("".join(f"{s}\n{data.EOT}{end}" for s in stories), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory, data_dir, valid_stories) -> Path:
    """A local folder of real TinyStories files: LLMFS_DATA itself, or, where the
    tests read the hub, one written here from the stories read from it."""
    if data_dir is not None:
        return data_dir
    out = tmp_path_factory.mktemp("tinystories")
    third = len(valid_stories) // 3
    _write(out, "hub-valid.txt", valid_stories[:third])
    _write(out, "hub-train-b.txt", valid_stories[2 * third:])
    _write(out, "hub-train-a.txt", valid_stories[third:2 * third])
    return out


def _stories_in(path: Path) -> list[str]:
    """The stories of one file, split on the marker line by plain string methods."""
    text = path.read_text(encoding="utf-8").replace("\r\n", "\n")
    return [s.strip() for s in text.split(f"\n{data.EOT}\n") if s.strip()]


@pytest.fixture
def no_hub(monkeypatch):
    """Make any use of the hub fail the test loudly."""
    import datasets

    def forbidden(*args, **kwargs):
        raise AssertionError("the hub was contacted although a local folder was given")

    monkeypatch.setattr(datasets, "load_dataset", forbidden)
    monkeypatch.setattr(data, "hub_reachable", forbidden)


@pytest.mark.parametrize("split", data.SPLITS)
def test_a_split_reads_every_story_of_its_files_in_name_order(folder, no_hub, split):
    files = data.split_files(folder, split)
    assert [f.name for f in files] == sorted(f.name for f in files)
    assert all(split in f.name.lower() for f in files)
    expected = [s for f in files for s in _stories_in(f)]
    stories = load_stories(split, path=folder)
    assert stories == expected and len(stories) > 0
    assert all(data.EOT not in s and s == s.strip() and s for s in stories)


def test_max_stories_caps_the_count_across_files(folder, no_hub):
    files = data.split_files(folder, "train")
    first = len(_stories_in(files[0]))
    everything = load_stories("train", path=folder)
    for n in [0, 1, 25, first, first + 3]:
        assert load_stories("train", path=folder, max_stories=n) == everything[:n]
    with pytest.raises(ValueError, match="max_stories"):
        load_stories("train", path=folder, max_stories=-1)


def test_every_profile_reads_at_most_its_own_number_of_stories(folder, no_hub):
    from llm_from_scratch.data.prepare import read_limits

    for profile in ("smoke", "cpu", "gpu"):
        for split, limit in read_limits(profile).items():
            assert len(load_stories(split, path=folder, max_stories=limit)) <= limit


def test_llmfs_data_is_used_and_an_explicit_path_wins(tmp_path, monkeypatch, no_hub):
    _write(tmp_path / "env", "x-valid.txt", ["from env"])
    _write(tmp_path / "arg", "x-valid.txt", ["from arg"])
    monkeypatch.setenv("LLMFS_DATA", str(tmp_path / "env"))
    assert load_stories("valid") == ["from env"]
    assert load_stories("valid", path=tmp_path / "arg") == ["from arg"]


def test_stories_stream_with_crlf_and_without_a_final_marker(tmp_path):
    path = tmp_path / "t-train.txt"
    path.write_bytes(b"One.\r\nTwo lines.\r\n<|endoftext|>\r\nLast, unterminated.\n")
    # text mode turns CRLF into "\n": stories read the same on every platform
    assert list(data.read_stories(path)) == ["One.\nTwo lines.", "Last, unterminated."]


def test_missing_llmfs_data_folder_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMFS_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(DataNotFoundError) as info:
        load_stories("valid")
    message = str(info.value)
    assert "\n" not in message
    assert "LLMFS_DATA=" in message and "nowhere" in message
    assert "is not a directory" in message


def test_folder_without_the_split_says_what_is_missing(tmp_path):
    _write(tmp_path, "stories-train.txt", ["a"])
    with pytest.raises(DataNotFoundError, match="'valid'"):
        load_stories("valid", path=tmp_path)


def test_unknown_split_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="split must be one of"):
        load_stories("test", path=tmp_path)


def test_unreachable_hub_fails_fast_with_instructions(monkeypatch):
    monkeypatch.delenv("LLMFS_DATA", raising=False)
    monkeypatch.delenv("LLMFS_HUB_DATASET", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    start = time.perf_counter()
    with pytest.raises(DataNotFoundError) as info:
        load_stories("valid")
    assert time.perf_counter() - start < 5
    assert "unreachable" in str(info.value) and "LLMFS_DATA" in str(info.value)


def test_offline_hub_without_a_cache_fails_fast_with_instructions(tmp_path):
    # A fresh process, so that datasets reads an empty cache location at import.
    env = {k: v for k, v in os.environ.items()
           if k not in ("LLMFS_DATA", "LLMFS_HUB_DATASET")}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(tmp_path))
    code = ("from llm_from_scratch.data.corpus import load_stories, DataNotFoundError\n"
            "try:\n    load_stories('valid', max_stories=5)\n"
            "except DataNotFoundError as e:\n    print('ERR', e)\n")
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.stdout.startswith("ERR could not load roneneldan/TinyStories"), out
    assert "LLMFS_DATA" in out.stdout and out.stdout.count("\n") == 1
    assert time.perf_counter() - start < 60


def test_local_data_dir_is_none_without_a_folder(monkeypatch):
    monkeypatch.delenv("LLMFS_DATA", raising=False)
    assert local_data_dir() is None
