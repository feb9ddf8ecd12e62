"""Chapter 01, data: cleaning, deduplication, token shards and training windows."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from llm_from_scratch.data.corpus import (EOT, TokenWindows, clean_stories, clean_story,
                                          load_shards, repair_mojibake)
from llm_from_scratch.data.dedup import (deduplicate, exact_duplicates, jaccard,
                                         lsh_bands, minhash_permutations,
                                         minhash_signatures, near_duplicates, shingles,
                                         story_hash)
from llm_from_scratch.data.prepare import prepare_corpus, prepare_tokens, token_loader


def as_mojibake(text: str) -> str:
    """What a UTF-8 file looks like decoded as Windows-1252 (undefined bytes lost)."""
    return text.encode("utf-8").decode("cp1252", errors="ignore")


@pytest.mark.parametrize("text", [
    "Ben said, \u201cYou\u2019re a brave sailor!\u201d",
    "He heard a noise\u2014it was the bug \u2013 again\u2026",
    "\u2018Ahhh-Choo!\u2019, it said. Caf\u00e9 cr\u00e8me.",
])
def test_repair_mojibake_restores_text_decoded_as_cp1252(text):
    assert as_mojibake(text) != text
    assert repair_mojibake(as_mojibake(text)) == text


def test_repair_mojibake_leaves_correct_text_alone(valid_stories):
    clean = [s for s in valid_stories if "\u00e2\u20ac" not in s]
    assert all(repair_mojibake(s) == s for s in clean)


def test_cleaning_real_valid_split_repairs_mojibake_leaves_only_ascii(
        valid_stories):
    stories = valid_stories + [as_mojibake("Ben said, \u201cYou\u2019re brave!\u201d")]
    damaged = [s for s in stories if "\u00e2\u20ac" in s]
    kept, report = clean_stories(stories)
    assert len(damaged) > 0 and report["mojibake repaired"] == len(damaged)
    assert report["kept"] == len(kept) and len(kept) + report["dropped: truncated"] + \
        report["dropped: non-ASCII characters"] == len(stories)
    assert all(s.isascii() and "\n\n" not in s and "  " not in s for s in kept)


def test_clean_story_drops_truncated_and_foreign_stories():
    assert clean_story("Tom ran home. He was happy")[1] == "truncated"
    assert clean_story("Tom ran home.\nThe End")[1] is None
    assert clean_story('"Mira mi mu\u00f1eca!" Lily said.')[1] == "non-ASCII characters"
    text, reason = clean_story("Tom  ran.\n\n\u201cHi!\u201d  he said.")
    assert (text, reason) == ('Tom ran.\n"Hi!" he said.', None)


def test_exact_duplicates_ignore_whitespace_only(valid_stories):
    stories = valid_stories[:50] + [valid_stories[3].replace(" ", "  \n"),
                                    valid_stories[7] + "!"]
    assert exact_duplicates(stories) == [[3, 50]]
    assert story_hash("a  b\n") == story_hash("a b")


def test_minhash_signatures_equal_datasketch_affine32_on_same_shingles(valid_stories):
    # Reference: datasketch 2.0's MinHash, scheme "affine32", given our permutations and
    # the identity as its hash function. Tolerance: none, the signatures are integers.
    from datasketch import MinHash

    sets = [shingles(s) for s in valid_stories[:40]]
    perms = minhash_permutations(128, seed=7)
    ours = minhash_signatures(sets, perms, block=3000)  # several blocks
    for row, s in zip(ours, sets):
        ref = MinHash(num_perm=128, hashfunc=lambda x: x, permutations=perms,
                      scheme="affine32")
        ref.update_batch(s.tolist())
        assert np.array_equal(row, ref.hashvalues)


def test_minhash_estimate_is_within_four_standard_errors_of_exact_jaccard():
    rng = np.random.default_rng(0)
    pool = np.unique(rng.integers(0, 2**32, 5000, dtype=np.uint64).astype(np.uint32))
    for overlap in [0, 500, 1500, 2500]:
        a, b = np.sort(pool[:2500]), np.sort(pool[2500 - overlap:5000 - overlap])
        j = jaccard(a, b)
        sig = minhash_signatures([a, b], minhash_permutations(256, seed=overlap))
        est = np.mean(sig[0] == sig[1])
        assert abs(est - j) <= 4 * np.sqrt(j * (1 - j) / 256) + 1e-9


def test_lsh_bands_place_the_step_near_the_threshold():
    for threshold in [0.5, 0.7, 0.9]:
        b, r = lsh_bands(threshold, 128)
        assert b * r == 128 and abs((1 / b) ** (1 / r) - threshold) < 0.1


def test_near_duplicates_finds_planted_edits_in_real_stories(valid_stories):
    stories = valid_stories[:300]
    edited = [s.replace(" the ", " a ", 1) for s in stories[:3]]  # one word changed
    found = near_duplicates(stories + edited, threshold=0.7)
    pairs = {(i, j) for i, j, _ in found}
    assert {(0, 300), (1, 301), (2, 302)} <= pairs
    assert all(sim >= 0.7 for *_, sim in found)


def test_deduplicate_keeps_first_story_of_each_group(valid_stories):
    stories = valid_stories[:100]
    stories = stories + [stories[5] + " ", stories[9].replace(" a ", " one ", 1)]
    keep, removed = deduplicate(stories)
    assert 5 in keep and 9 in keep and 100 not in keep and 101 not in keep
    assert removed["exact duplicates removed"] >= 1
    assert removed["near duplicates removed"] >= 1
    assert len(keep) == len(stories) - sum(removed.values())


def test_prepare_corpus_leaves_no_train_copy_of_a_valid_story(tmp_path,
                                                              valid_stories):
    # Real, cleaned stories; the training file repeats two validation stories, one
    # exactly and one with its spacing changed.
    clean = clean_stories(valid_stories)[0]  # stories that cleaning keeps as they are
    valid, train = clean[:60], clean[60:160]
    (tmp_path / "v-valid.txt").write_text("".join(f"{s}\n{EOT}\n" for s in valid))
    copies = [valid[3], valid[7].replace(" ", "  ")]
    (tmp_path / "t-train.txt").write_text(
        "".join(f"{s}\n{EOT}\n" for s in train[:50] + copies + train[50:]))
    corpus, report = prepare_corpus("smoke", path=tmp_path)
    hashes = {story_hash(s) for s in corpus["valid"]}
    assert not any(story_hash(s) in hashes for s in corpus["train"])
    assert report["dedup"]["exact duplicates removed"] >= 2
    assert story_hash(valid[3]) in hashes and story_hash(valid[7]) in hashes


@pytest.fixture(scope="module")
def smoke_shards(tmp_path_factory, data_dir):
    home = tmp_path_factory.mktemp("llmfs_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLMFS_HOME", str(home))
        first = prepare_tokens("smoke", path=data_dir)
        stamps = {p: p.stat().st_mtime_ns for ps in first.values() for p in ps}
        second = prepare_tokens("smoke", path=data_dir)
        yield home, first, second, stamps


def test_prepare_tokens_writes_shards_once_and_reuses_them(smoke_shards):
    home, first, second, stamps = smoke_shards
    assert first == second and len(first["train"]) > 1  # smoke shards are small
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    assert not list(home.rglob("*.tmp"))  # written atomically: no leftovers
    manifest = json.loads((home / "smoke" / "tokens" / "manifest.json").read_text())
    assert manifest["tokens"]["train"] == sum(map(len, load_shards(first["train"])))


def test_shards_decode_to_the_corpus_with_endoftext_after_each_story(smoke_shards,
                                                                     data_dir):
    from tokenizers import Tokenizer

    home, shards, *_ = smoke_shards
    tok = Tokenizer.from_file(str(home / "smoke" / "tokenizer.json"))
    ids = np.concatenate(load_shards(shards["valid"]))
    assert ids.dtype == np.uint16
    corpus, _ = prepare_corpus("smoke", path=data_dir)
    text = tok.decode(ids.tolist(), skip_special_tokens=False)
    assert text == "".join(s + EOT for s in corpus["valid"])


def test_token_windows_yield_targets_shifted_by_one(smoke_shards, data_dir,
                                                     monkeypatch):
    home, shards, *_ = smoke_shards
    stream = np.concatenate(load_shards(shards["train"][:1]))
    windows = TokenWindows(shards["train"], context_length=32)
    assert len(windows) == sum((len(t) - 1) // 32 for t in load_shards(shards["train"]))
    x, y = windows[1]
    assert x.shape == y.shape == (32,) and x.dtype == torch.int64
    assert torch.equal(x, torch.from_numpy(stream[32:64].astype(np.int64)))
    assert torch.equal(y, torch.from_numpy(stream[33:65].astype(np.int64)))
    monkeypatch.setenv("LLMFS_HOME", str(home))
    xb, yb = next(iter(token_loader("smoke", "train", 8, 32, path=data_dir)))
    assert xb.shape == (8, 32) and torch.equal(xb[:, 1:], yb[:, :-1])


def test_split_files_leave_tinystories_instruct_records_out_of_the_corpus(tmp_path):
    from llm_from_scratch.data.corpus import split_files
    from llm_from_scratch.posttrain.instructions import instruct_files

    for name in ("TinyStories-train.txt", "TinyStories-valid.txt",
                 "TinyStoriesInstruct-train.txt", "TinyStoriesInstruct-valid.txt"):
        (tmp_path / name).write_text(f"Once upon a time.\n{EOT}\n")
    assert [f.name for f in split_files(tmp_path, "train")] == ["TinyStories-train.txt"]
    assert [f.name for f in instruct_files("train", tmp_path)] == [
        "TinyStoriesInstruct-train.txt"]
