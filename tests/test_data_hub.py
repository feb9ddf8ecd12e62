"""The hub path, without a network: real TinyStories text served through the same
`datasets` calls (streaming `load_dataset`) that reading the hub makes.

The dataset is a local folder in the hub's layout, as roneneldan/TinyStories holds it:
``data/<split>-NNNNN-of-NNNNN.parquet`` files with one story per row in a ``text``
column, the splits named ``train`` and ``validation``. `LLMFS_HUB_DATASET` points the
package at it; `datasets` resolves a local folder exactly as it resolves a hub id. Run:

    .venv/bin/python -m pytest tests/test_data_hub.py
"""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_from_scratch.data.corpus import EOT, DataNotFoundError, load_stories

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def hub_layout(tmp_path_factory, valid_stories) -> tuple[Path, dict[str, list[str]]]:
    """(folder, the stripped stories of each split): real stories from the data path,
    with the untidy rows a table may hold (padding, an empty row). The second train
    file is not parquet at all: a read that stops in time never opens it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path_factory.mktemp("hub") / "TinyStories"
    (folder / "data").mkdir(parents=True)
    half = len(valid_stories) // 2
    valid, train = valid_stories[:half], valid_stories[half:]
    rows = {"validation": [f"  {valid[0]}\n", *valid[1:5], "", *valid[5:]],
            "train": train}
    pq.write_table(pa.table({"text": rows["validation"]}),
                   folder / "data" / "validation-00000-of-00001.parquet",
                   row_group_size=50)
    pq.write_table(pa.table({"text": rows["train"]}),
                   folder / "data" / "train-00000-of-00002.parquet", row_group_size=50)
    (folder / "data" / "train-00001-of-00002.parquet").write_bytes(b"PAR1 not parquet")
    return folder, {"valid": valid, "train": train}


@pytest.fixture
def read_hub(monkeypatch, hub_layout):
    monkeypatch.delenv("LLMFS_DATA", raising=False)
    monkeypatch.setenv("LLMFS_HUB_DATASET", str(hub_layout[0]))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing may come from the network
    return hub_layout[1]


def test_hub_splits_are_read_by_their_hub_names_and_stripped(read_hub):
    stories = load_stories("valid", max_stories=10_000)
    assert stories == read_hub["valid"]  # "valid" is the hub's "validation"
    assert all(s and s == s.strip() for s in stories)  # no padding, no empty row


def test_hub_reading_stops_after_max_stories_without_opening_later_files(read_hub):
    n = len(read_hub["train"])
    for limit in [0, 1, 7, n]:
        assert load_stories("train", max_stories=limit) == read_hub["train"][:limit]
    with pytest.raises(DataNotFoundError, match="Parquet") as info:
        load_stories("train", max_stories=n + 1)  # needs the broken second file
    assert "\n" not in str(info.value)


def test_hub_stories_carry_no_separator_and_join_like_the_text_files(read_hub,
                                                                     tmp_path):
    from llm_from_scratch.data.corpus import read_stories

    stories = load_stories("valid", max_stories=100)
    assert not any(EOT in s for s in stories)
    text_file = tmp_path / "as-text-valid.txt"  # the local layout of the same rows
    text_file.write_text("".join(f"{s}\n{EOT}\n" for s in stories), encoding="utf-8")
    assert list(read_stories(text_file)) == stories


def test_the_pipeline_runs_on_the_hub_path(read_hub, hub_layout, tmp_path,
                                           monkeypatch):
    from llm_from_scratch.data.prepare import (data_signature, prepare_corpus,
                                               read_limits)

    monkeypatch.setenv("LLMFS_HOME", str(tmp_path))
    assert data_signature() == [str(hub_layout[0])]
    limits = read_limits("smoke")
    corpus, report = prepare_corpus("smoke")
    for split in ("train", "valid"):
        read = sum(n for k, n in report[split].items()
                   if k == "kept" or k.startswith("dropped"))
        assert read == min(limits[split], len(read_hub[split]))
        assert 0 < len(corpus[split]) <= report[split]["kept"]
