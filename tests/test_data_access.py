"""Where TinyStories comes from: a local folder, else the hub, else a clear error."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llm_from_scratch import data
from llm_from_scratch.data import DataNotFoundError, load_stories, local_data_dir


def _write(folder: Path, name: str, stories: list[str], end: str = "\n") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("".join(f"{s}\n{data.EOT}{end}" for s in stories), encoding="utf-8")
    return path


@pytest.fixture
def no_hub(monkeypatch):
    """Make any use of the hub fail the test loudly."""
    import datasets

    def forbidden(*args, **kwargs):
        raise AssertionError("the hub was contacted although a local folder was given")

    monkeypatch.setattr(datasets, "load_dataset", forbidden)
    monkeypatch.setattr(data, "hub_reachable", forbidden)


def test_reads_every_story_of_the_real_validation_file(data_dir, no_hub):
    stories = load_stories("valid", path=data_dir)
    assert len(stories) == 1000  # SOURCES.md: the first 1,000 validation stories
    assert stories[0].startswith("Spot. Spot saw the shiny car")
    assert all(data.EOT not in s and s == s.strip() and s for s in stories)


def test_train_split_reads_both_train_files_in_name_order(data_dir, no_hub):
    files = data.split_files(data_dir, "train")
    assert [f.name for f in files] == sorted(f.name for f in files) and len(files) == 2
    assert len(load_stories("train", path=data_dir)) == 2316 + 3000


def test_max_stories_caps_the_count(data_dir, no_hub):
    assert len(load_stories("train", path=data_dir, max_stories=25)) == 25


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
    assert "LLMFS_DATA=" in message and "nowhere" in message and "is not a directory" in message


def test_folder_without_the_split_says_what_is_missing(tmp_path):
    _write(tmp_path, "stories-train.txt", ["a"])
    with pytest.raises(DataNotFoundError, match="'valid'"):
        load_stories("valid", path=tmp_path)


def test_unknown_split_is_rejected(data_dir):
    with pytest.raises(ValueError, match="split must be one of"):
        load_stories("test", path=data_dir)


def test_unreachable_hub_fails_fast_with_instructions(monkeypatch):
    monkeypatch.delenv("LLMFS_DATA", raising=False)
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
    env = {k: v for k, v in os.environ.items() if k != "LLMFS_DATA"}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(tmp_path))
    code = ("from llm_from_scratch.data import load_stories, DataNotFoundError\n"
            "try:\n    load_stories('valid')\n"
            "except DataNotFoundError as e:\n    print('ERR', e)\n")
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.stdout.startswith("ERR could not load roneneldan/TinyStories"), out
    assert "LLMFS_DATA" in out.stdout
    assert time.perf_counter() - start < 60


def test_hub_branch_asks_datasets_for_the_right_split(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(name, split):
        calls.append((name, split))
        return {"text": ["  A story.\n", "", "Another one. "]}

    monkeypatch.delenv("LLMFS_DATA", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # skips the connection test
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    assert load_stories("valid", max_stories=3) == ["A story.", "Another one."]
    assert calls == [("roneneldan/TinyStories", "validation[:3]")]


def test_local_data_dir_is_none_without_a_folder(monkeypatch):
    monkeypatch.delenv("LLMFS_DATA", raising=False)
    assert local_data_dir() is None


def test_exact_duplicates_ignore_whitespace_only():
    stories = ["The cat sat.", "The  cat\nsat. ", "The cat sat!", "Dog.", "The cat sat."]
    assert data.exact_duplicates(stories) == [[0, 1, 4]]
