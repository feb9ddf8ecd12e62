"""Benchmark: the from-scratch BPE against HF tokenizers, same data, same run.

    LLMFS_DATA=... python benchmarks/tokenizer.py [--profile cpu] [--repeat 3]

Trains both on the TinyStories train files at the profile's vocabulary size, checks
that they learned the same merges, then encodes the same stories with both (and with
tiktoken given the same merges, for scale) and checks the ids agree. Prints times
(best of --repeat), encode throughput in MB/s, and the ratios.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout

from llm_from_scratch.data.corpus import load_stories  # noqa: E402
from llm_from_scratch.config.profiles import get_profile  # noqa: E402
from llm_from_scratch.data.tokenizer import (  # noqa: E402
    GPT2_PATTERN, BPETokenizer, bpe_from_hf, train_hf_tokenizer)


def best_of(repeat: int, fn):
    """(smallest wall time in seconds, result of the last call)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sizes = get_profile(args.profile).data
    vocab_size = sizes.vocab_size
    stories = load_stories("train", max_stories=sizes.max_train_stories)
    mb = sum(len(s.encode("utf-8")) for s in stories) / 1e6
    print(f"data: {len(stories):,} train stories, {mb:.2f} MB "
          f"({os.environ.get('LLMFS_DATA') or 'hub'}); vocabulary {vocab_size:,}; "
          f"{os.cpu_count()} logical cores; best of {args.repeat}")

    t_ours, ours = best_of(args.repeat, lambda: BPETokenizer.train(stories, vocab_size))
    t_hf, hf = best_of(args.repeat, lambda: train_hf_tokenizer(stories, vocab_size))
    same = bpe_from_hf(hf.to_str()).merges == ours.merges
    print(f"train  from scratch {t_ours:7.2f} s | HF tokenizers {t_hf:7.2f} s | "
          f"ratio {t_ours / t_hf:5.2f}x | same merges: {same}")

    # A fresh tokenizer each time: its cache of pre-tokens starts empty.
    e_ours, ids_ours = best_of(
        args.repeat, lambda: _encode_all(BPETokenizer(ours.merges), stories))
    e_hf1, ids_hf1 = best_of(args.repeat, lambda: [hf.encode(s).ids for s in stories])
    e_hfb, ids_hfb = best_of(args.repeat,
                             lambda: [e.ids for e in hf.encode_batch(stories)])
    import tiktoken

    tik = tiktoken.Encoding(
        name="tinystories", pat_str=GPT2_PATTERN, special_tokens=ours.special,
        mergeable_ranks={ours.vocab[i]: i for i in range(256 + len(ours.merges))})
    e_tik, ids_tik = best_of(
        args.repeat, lambda: tik.encode_ordinary_batch(stories, num_threads=1))
    assert ids_ours == ids_hf1 == ids_hfb == ids_tik, "the encoders disagree"
    print(f"encode from scratch {mb / e_ours:7.2f} MB/s (one thread)")
    print(f"encode HF tokenizers {mb / e_hf1:6.2f} MB/s (one call per story)")
    print(f"encode HF tokenizers {mb / e_hfb:6.2f} MB/s (encode_batch, all cores)")
    print(f"encode tiktoken     {mb / e_tik:7.2f} MB/s (same merges, one thread)")
    print(f"encode throughput, from scratch / HF: {e_hf1 / e_ours:.2f}x (per story), "
          f"{e_hfb / e_ours:.2f}x (batch); from scratch / tiktoken: "
          f"{e_tik / e_ours:.2f}x")
    return 0


def _encode_all(tok: BPETokenizer, stories: list[str]) -> list[list[int]]:
    return [tok.encode(s) for s in stories]


if __name__ == "__main__":
    sys.exit(main())
