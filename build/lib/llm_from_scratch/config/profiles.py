"""Run profiles: how big every run in the book is, defined once.

Chapters and the command line read their sizes from here, never from literals spread
through cells. Each chapter owns one section (a small frozen dataclass); a profile is one
value of every section.

- ``smoke``: CI. Proves that every cell runs and every check holds, on tiny data and
  models, a couple of minutes a chapter on 2 CPU cores. Not for quality.
- ``cpu``: a laptop without a GPU. Real results on all of the local sample (or as many
  stories from the hub); the whole book in about an hour on 2 cores.
- ``gpu``: one CUDA GPU, full-size runs.
- ``auto``: ``gpu`` when CUDA is available, else ``cpu``.

Two environment variables re-run a profile with other seeds or another precision
(``tools/claims_sweep.py`` uses them to check that the book's claims hold across both):

- ``LLMFS_SEED=1`` adds 1 to every section's seed and to ``Profile.seed_offset``, which
  the chapters add to their own constant seeds; ``LLMFS_SEED=sft=1,dpo=2`` shifts the
  named sections only (``chapter`` names ``seed_offset``), so a sweep of chapter 08
  keeps chapter 04's pretrained model.
- ``LLMFS_PRECISION=fp32`` sets every training loop's precision and
  ``Profile.precision``, the precision a chapter's own experiments use where it is
  theirs to choose; ``LLMFS_PRECISION=sft=bf16`` sets the named sections only.

Seeds and precisions are part of every run's configuration, so a shifted profile never
reuses a run of another seed or precision.
"""

from __future__ import annotations

import os
from dataclasses import replace

import torch

from llm_from_scratch.config.sizes import (AttentionSizes, DataSizes, DPOSizes,
                                           EvalSizes, GenerateSizes, ModelParallelSizes,
                                           ModelSizes, ParallelSizes, Profile, SFTSizes,
                                           TrainSizes)
from llm_from_scratch.config.training import TrainConfig


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        summary="CI: tiny data and models; proves every cell runs",
        data=DataSizes(max_train_stories=400, max_valid_stories=400, vocab_size=512,
                       bpe_demo_stories=100, bpe_demo_vocab=300,
                       compression_vocab_sizes=(300, 512, 1024), shard_tokens=2**15,
                       all_pairs_stories=800),
        attention=AttentionSizes(
            d_model=64, n_heads=4, n_kv_heads=2, sweep_seq_lens=(64, 128, 256, 512),
            sweep_batch=1, sweep_heads=2, sweep_head_dim=32, naive_max_seq_len=512,
            tile=64, triton_block=16, triton_seq_len=40, repeats=3),
        model=ModelSizes(n_layers=2, n_heads=4, n_kv_heads=2, d_model=64,
                         context_len=64, tie_embeddings=True, depth_demo_layers=16),
        train=TrainSizes(
            loop=TrainConfig(
                max_steps=60, lr=3e-3, min_lr=3e-4, warmup_steps=10,
                weight_decay=0.1, grad_accum=2, grad_clip=1.0, precision="fp32",
                eval_interval=20, sample_steps=(0, 30), checkpoint_interval=30),
            batch_size=8, eval_batches=4, sample_tokens=40, seed=0, timing_steps=2,
            timing_batch=2, sweep_d_models=(16, 32, 64), sweep_layers=2,
            sweep_context=32, sweep_batch=8, sweep_flops=4e9, sweep_evals=5),
        generate=GenerateSizes(max_new_tokens=24, timing_prompt=8,
                               timing_lengths=(8, 16, 32), timing_repeats=1, seed=0),
        parallel=ParallelSizes(
            demo_layers=2, demo_d_model=32, demo_heads=4, demo_vocab=96,
            demo_context=16, demo_batch=8, demo_steps=5, bucket_kb=16,
            ring_elements=2**16, timing_batch=8, timing_steps=3, cli_steps=4),
        model_parallel=ModelParallelSizes(
            demo_layers=4, demo_d_model=32, demo_heads=4, demo_vocab=96,
            demo_context=16, demo_batch=8, demo_steps=3, micro_batches=(2, 8),
            timing_d_model=64, timing_context=32, timing_batch=8, timing_steps=2),
        sft=SFTSizes(
            loop=TrainConfig(
                max_steps=30, lr=1e-3, min_lr=1e-4, warmup_steps=5, weight_decay=0.0,
                grad_accum=1, grad_clip=1.0, precision="fp32", eval_interval=10,
                checkpoint_interval=15),
            per_story=1, max_constraints=2, eval_instructions=24, batch_size=8,
            eval_batches=2, seed=0, examples_shown=2),
        dpo=DPOSizes(
            loop=TrainConfig(
                max_steps=8, lr=1e-4, min_lr=1e-5, warmup_steps=2, weight_decay=0.0,
                grad_accum=1, grad_clip=1.0, precision="fp32", eval_interval=4,
                checkpoint_interval=4),
            pair_prompts=48, heldout_prompts=16, samples=4, temperature=1.0,
            top_p=1.0, max_new_tokens=32, beta=0.1, beta_sweep=(0.01, 0.1, 0.5),
            batch_size=4, seed=0, kl_prompts=8,
            # smoke's tiny model writes mostly invented words: with the guard on,
            # every reply would be degenerate and no pair would be left
            gibberish_guard=False),
        eval=EvalSizes(cloze_items=60, final_word_items=60, ngram=8,
                       contamination_threshold=0.5, samples=8, sample_tokens=48,
                       batch_size=16, seed=0, instructions=24),
    ),
    "cpu": Profile(
        name="cpu",
        summary="a laptop CPU: real results on the local TinyStories files",
        # 6,000 + 1,000 stories: every story of the local sample (5,316 train, the
        # first 1,000 validation), and from the hub a few megabytes, streamed, that
        # keep chapter 01 within minutes on 2 cores (the hub has 2.1M stories).
        data=DataSizes(max_train_stories=6000, max_valid_stories=1000,
                       vocab_size=4096, bpe_demo_stories=600, bpe_demo_vocab=512,
                       compression_vocab_sizes=(320, 512, 1024, 2048, 4096, 8192),
                       shard_tokens=2**20, all_pairs_stories=7000),
        attention=AttentionSizes(
            d_model=256, n_heads=8, n_kv_heads=2,
            sweep_seq_lens=(256, 512, 1024, 2048, 4096), sweep_batch=1, sweep_heads=4,
            sweep_head_dim=64, naive_max_seq_len=4096, tile=256, triton_block=32,
            triton_seq_len=100, repeats=5),
        model=ModelSizes(n_layers=6, n_heads=8, n_kv_heads=4, d_model=256,
                         context_len=256, tie_embeddings=True, depth_demo_layers=48),
        train=TrainSizes(
            loop=TrainConfig(
                max_steps=1200, lr=2e-3, min_lr=2e-4, warmup_steps=50,
                weight_decay=0.1, grad_accum=1, grad_clip=1.0, precision="auto",
                eval_interval=100, sample_steps=(0, 50, 150, 400),
                checkpoint_interval=100),
            batch_size=16, eval_batches=8, sample_tokens=120, seed=0,
            timing_steps=3, timing_batch=4, sweep_d_models=(16, 32, 64, 128),
            sweep_layers=2, sweep_context=128, sweep_batch=16, sweep_flops=1e12,
            sweep_evals=8),
        generate=GenerateSizes(max_new_tokens=120, timing_prompt=16,
                               timing_lengths=(32, 64, 128, 256, 512),
                               timing_repeats=3, seed=0),
        parallel=ParallelSizes(
            demo_layers=2, demo_d_model=64, demo_heads=4, demo_vocab=256,
            demo_context=32, demo_batch=8, demo_steps=5, bucket_kb=64,
            ring_elements=2**22, timing_batch=16, timing_steps=5, cli_steps=20),
        model_parallel=ModelParallelSizes(
            demo_layers=4, demo_d_model=64, demo_heads=4, demo_vocab=256,
            demo_context=32, demo_batch=8, demo_steps=3, micro_batches=(2, 4, 8),
            timing_d_model=128, timing_context=64, timing_batch=16, timing_steps=3),
        sft=SFTSizes(
            loop=TrainConfig(
                max_steps=200, lr=5e-4, min_lr=5e-5, warmup_steps=20, weight_decay=0.0,
                grad_accum=1, grad_clip=1.0, precision="auto", eval_interval=50,
                checkpoint_interval=50),
            per_story=2, max_constraints=3, eval_instructions=300, batch_size=16,
            eval_batches=8, seed=0, examples_shown=3),
        dpo=DPOSizes(
            loop=TrainConfig(
                max_steps=30, lr=1e-4, min_lr=1e-5, warmup_steps=3, weight_decay=0.0,
                grad_accum=1, grad_clip=1.0, precision="auto", eval_interval=5,
                checkpoint_interval=15),
            pair_prompts=256, heldout_prompts=48, samples=8, temperature=1.0,
            top_p=1.0, max_new_tokens=160, beta=0.1, beta_sweep=(0.01, 0.1, 0.5),
            batch_size=8, seed=0, kl_prompts=32, gibberish_guard=True),
        eval=EvalSizes(cloze_items=300, final_word_items=300, ngram=8,
                       contamination_threshold=0.5, samples=24, sample_tokens=200,
                       batch_size=16, seed=0, instructions=120),
    ),
    "gpu": Profile(
        name="gpu",
        summary="one CUDA GPU: full-size runs",
        # A quarter of the hub's train split (about 100M tokens) and all of its
        # 21,990 validation stories; pure-Python BPE and MinHash still finish.
        data=DataSizes(max_train_stories=500_000, max_valid_stories=22_000,
                       vocab_size=8192, bpe_demo_stories=600, bpe_demo_vocab=512,
                       compression_vocab_sizes=(512, 1024, 2048, 4096, 8192, 16384),
                       shard_tokens=2**24, all_pairs_stories=8000),
        attention=AttentionSizes(
            d_model=1024, n_heads=16, n_kv_heads=4,
            sweep_seq_lens=(512, 1024, 2048, 4096, 8192, 16384), sweep_batch=1,
            sweep_heads=16, sweep_head_dim=64, naive_max_seq_len=8192, tile=512,
            triton_block=64, triton_seq_len=1000, repeats=10),
        model=ModelSizes(n_layers=18, n_heads=12, n_kv_heads=4, d_model=768,
                         context_len=1024, tie_embeddings=True, depth_demo_layers=48),
        train=TrainSizes(
            loop=TrainConfig(
                max_steps=5000, lr=6e-4, min_lr=6e-5, warmup_steps=200,
                weight_decay=0.1, grad_accum=4, grad_clip=1.0, precision="auto",
                compile=True, eval_interval=250, sample_steps=(0, 100, 500, 2000),
                checkpoint_interval=500),
            batch_size=32, eval_batches=20, sample_tokens=200, seed=0,
            timing_steps=10, timing_batch=16,
            sweep_d_models=(64, 128, 256, 384), sweep_layers=4, sweep_context=256,
            sweep_batch=32, sweep_flops=3e15, sweep_evals=10),
        generate=GenerateSizes(max_new_tokens=200, timing_prompt=32,
                               timing_lengths=(64, 128, 256, 512, 1024),
                               timing_repeats=3, seed=0),
        parallel=ParallelSizes(
            demo_layers=2, demo_d_model=64, demo_heads=4, demo_vocab=256,
            demo_context=32, demo_batch=8, demo_steps=5, bucket_kb=64,
            ring_elements=2**26, timing_batch=32, timing_steps=10, cli_steps=50),
        model_parallel=ModelParallelSizes(
            demo_layers=4, demo_d_model=64, demo_heads=4, demo_vocab=256,
            demo_context=32, demo_batch=8, demo_steps=3, micro_batches=(2, 4, 8),
            timing_d_model=128, timing_context=64, timing_batch=16, timing_steps=3),
        sft=SFTSizes(
            loop=TrainConfig(
                max_steps=1000, lr=2e-4, min_lr=2e-5, warmup_steps=50, weight_decay=0.0,
                grad_accum=1, grad_clip=1.0, precision="auto", eval_interval=100,
                checkpoint_interval=200),
            per_story=4, max_constraints=3, eval_instructions=500, batch_size=32,
            eval_batches=20, seed=0, examples_shown=3),
        dpo=DPOSizes(
            loop=TrainConfig(
                max_steps=600, lr=5e-6, min_lr=5e-7, warmup_steps=30, weight_decay=0.0,
                grad_accum=1, grad_clip=1.0, precision="auto", eval_interval=50,
                checkpoint_interval=200),
            pair_prompts=4000, heldout_prompts=400, samples=8, temperature=1.0,
            top_p=1.0, max_new_tokens=400, beta=0.1,
            beta_sweep=(0.01, 0.03, 0.1, 0.3, 1.0), batch_size=32, seed=0,
            kl_prompts=256, gibberish_guard=True),
        eval=EvalSizes(cloze_items=1000, final_word_items=1000, ngram=8,
                       contamination_threshold=0.5, samples=64, sample_tokens=256,
                       batch_size=64, seed=0, instructions=500),
    ),
}

PROFILE_NAMES = (*PROFILES, "auto")


class UnknownProfileError(ValueError):
    """Raised for a profile name that is not one of ``PROFILE_NAMES``."""


def resolve_profile_name(name: str = "auto") -> str:
    """Map ``auto`` to ``gpu`` or ``cpu``; check every other name."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    if name not in PROFILES:
        raise UnknownProfileError(
            f"unknown profile {name!r}: use one of {', '.join(PROFILE_NAMES)}"
        )
    return name


def get_profile(name: "str | Profile" = "auto", **sections) -> Profile:
    """The profile called ``name``, with whole sections optionally replaced.

    A Profile passes through as it is: a recipe resolves the name once, at the top,
    and hands the resolved profile (possibly with replaced sections) to the layers
    below, which never resolve it again.

    >>> get_profile("smoke").data.max_train_stories
    400
    """
    if isinstance(name, Profile):
        profile = name
    else:
        profile = with_overrides(PROFILES[resolve_profile_name(name)])
    return replace(profile, **sections) if sections else profile


SECTIONS = ("data", "attention", "model", "train", "generate", "parallel",
            "model_parallel", "sft", "dpo", "eval")
SEEDED = tuple(s for s in SECTIONS if hasattr(getattr(PROFILES["smoke"], s), "seed"))
LOOPED = tuple(s for s in SECTIONS if hasattr(getattr(PROFILES["smoke"], s), "loop"))
OVERRIDE_PRECISIONS = ("fp32", "bf16", "fp16", "auto")


def parse_override(variable: str, text: str, parse, targets: tuple[str, ...]) -> dict:
    """``"v"`` -> every target and ``chapter``; ``"a=v,b=w"`` -> the named ones."""
    names = (*targets, "chapter")
    if "=" not in text:
        return dict.fromkeys(names, parse(text.strip()))
    chosen = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, _, value = part.partition("=")
        if key.strip() not in names:
            raise ValueError(f"{variable}={text!r}: {key.strip()!r} is not one of "
                             f"{', '.join(names)}")
        chosen[key.strip()] = parse(value.strip())
    return chosen


def _seed(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"LLMFS_SEED: {text!r} is not an integer offset") from None


def _precision(text: str) -> str:
    if text not in OVERRIDE_PRECISIONS:
        raise ValueError(f"LLMFS_PRECISION: {text!r} is not one of "
                         f"{', '.join(OVERRIDE_PRECISIONS)}")
    return text


def with_overrides(profile: Profile, environ=None) -> Profile:
    """``profile`` with ``LLMFS_SEED`` and ``LLMFS_PRECISION`` applied (see the module).

    >>> with_overrides(PROFILES["smoke"], {"LLMFS_SEED": "sft=3"}).sft.seed
    3
    """
    environ = os.environ if environ is None else environ
    seeds = parse_override("LLMFS_SEED", environ.get("LLMFS_SEED") or "0", _seed,
                           SEEDED)
    text = environ.get("LLMFS_PRECISION") or ""
    precisions = (parse_override("LLMFS_PRECISION", text, _precision, LOOPED) if text
                  else {})
    changes = {}
    for section in SECTIONS:
        sizes, edits = getattr(profile, section), {}
        if seeds.get(section):
            edits["seed"] = sizes.seed + seeds[section]
        if section in precisions:
            edits["loop"] = replace(sizes.loop, precision=precisions[section])
        if edits:
            changes[section] = replace(sizes, **edits)
    if seeds.get("chapter"):
        changes["seed_offset"] = profile.seed_offset + seeds["chapter"]
    if "chapter" in precisions:
        changes["precision"] = precisions["chapter"]
    return replace(profile, **changes) if changes else profile
