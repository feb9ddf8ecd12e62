"""The sections of a run profile: one small frozen dataclass per chapter, and
``Profile``, one value of each (hand-written glue; ``config.profiles`` holds the values).

Chapters and the command line read their sizes from a profile, never from literals
spread through cells; each section's fields say what they size, with a comment.
"""

from __future__ import annotations

from dataclasses import dataclass

from llm_from_scratch.config.training import TrainConfig


@dataclass(frozen=True)
class DataSizes:
    """Chapter 01: how much TinyStories text to read, and the tokenizer's sizes."""

    max_train_stories: int  # read at most this many train stories, whatever the source
    max_valid_stories: int  # and at most this many validation stories
    vocab_size: int  # the production tokenizer: bytes + merges + <|endoftext|>
    bpe_demo_stories: int  # corpus on which the naive and fast BPE trainers race
    bpe_demo_vocab: int  # vocabulary size of that race
    compression_vocab_sizes: tuple[int, ...]  # vocabulary sizes of the compression plot
    shard_tokens: int  # tokens per shard file
    all_pairs_stories: int  # the quadratic all-pairs reference of MinHash/LSH reads these


@dataclass(frozen=True)
class AttentionSizes:
    """Chapter 02: the attention layers it builds and the sweep that times them."""

    d_model: int  # width of the example layers
    n_heads: int  # query heads of the example layers
    n_kv_heads: int  # key/value heads of the grouped-query example
    sweep_seq_lens: tuple[int, ...]  # sequence lengths of the time/memory sweep
    sweep_batch: int  # batch size of the sweep
    sweep_heads: int  # heads of the sweep
    sweep_head_dim: int  # head dimension of the sweep
    naive_max_seq_len: int  # the naive version (T x T scores) stops here in the sweep
    tile: int  # query and key block of the tiled PyTorch attention
    triton_block: int  # query and key block of the Triton kernel
    triton_seq_len: int  # sequence length of the Triton checks (interpreted on a CPU)
    repeats: int  # timed repetitions per point (the median is kept)


@dataclass(frozen=True)
class ModelSizes:
    """Chapter 03: the shape of the model the book trains (chapter 04 trains it).

    The vocabulary size is not here: it is the tokenizer's (chapter 01).
    """

    n_layers: int  # transformer blocks
    n_heads: int  # query heads
    n_kv_heads: int  # key/value heads (grouped-query attention)
    d_model: int  # width of the residual stream
    context_len: int  # longest sequence the model is trained on
    tie_embeddings: bool  # the LM head reuses the token embedding matrix
    depth_demo_layers: int  # depth of the narrow model in the initialisation figure


@dataclass(frozen=True)
class TrainSizes:
    """Chapter 04: the pretraining run, its speed comparison and the scaling sweep.

    ``loop`` is the training loop's own configuration (``config.training.TrainConfig``: steps,
    schedule, accumulation, precision...); the rest is what the pretraining recipe
    adds around it. The context length is the model's (``ModelSizes.context_len``).
    """

    loop: TrainConfig  # what train() takes, as it takes it
    batch_size: int  # sequences per micro-batch (per process)
    eval_batches: int  # validation batches per evaluation, spread over the split
    sample_tokens: int  # tokens per sample written to the log
    seed: int  # model initialisation and data order
    timing_steps: int  # steps timed per precision in the speed comparison
    timing_batch: int  # sequences per timed step
    sweep_d_models: tuple[int, ...]  # widths of the scaling sweep's models
    sweep_layers: int  # depth of the scaling sweep's models
    sweep_context: int  # context length of the scaling sweep
    sweep_batch: int  # sequences per step of the scaling sweep
    sweep_flops: float  # training compute of every sweep run, 6 N D
    sweep_evals: int  # validation points along each sweep run


@dataclass(frozen=True)
class GenerateSizes:
    """Chapter 05: how much text the chapter generates and how the cache is timed."""

    max_new_tokens: int  # tokens per sample shown in the chapter
    timing_prompt: int  # prompt tokens of the speed measurement
    timing_lengths: tuple[int, ...]  # generated lengths timed, with and without cache
    timing_repeats: int  # runs per point (the fastest is kept)
    seed: int  # every sample in the chapter draws from this seed


@dataclass(frozen=True)
class ParallelSizes:
    """Chapter 06: the data-parallel checks, measurements and launches.

    The equivalence checks train a small model of their own on random tokens; the
    measurements and the ``llmfs train --parallel`` runs use the profile's model.
    """

    demo_layers: int  # blocks of the checks' model
    demo_d_model: int  # its width
    demo_heads: int  # its query heads (half as many key/value heads)
    demo_vocab: int  # its vocabulary (random token ids)
    demo_context: int  # its sequence length
    demo_batch: int  # global batch of every check (sequences), split over ranks
    demo_steps: int  # optimizer steps each check compares after
    bucket_kb: int  # bucket size of the hand-written bucketed all-reduce
    ring_elements: int  # elements of the tensor the ring all-reduce sums
    timing_batch: int  # global batch of the timed steps (the profile's model)
    timing_steps: int  # timed steps per method, after one warm-up step
    cli_steps: int  # optimizer steps of each `llmfs train --parallel` run


@dataclass(frozen=True)
class ModelParallelSizes:
    """Chapter 07: the tensor- and pipeline-parallel checks and the pipeline timing.

    The checks train a small model of their own on random tokens (4 processes at
    most on 2 cores: it must stay tiny); the timeline times a wider one.
    """

    demo_layers: int  # blocks of the checks' model (the pipeline splits these)
    demo_d_model: int  # its width
    demo_heads: int  # its query heads (half as many key/value heads)
    demo_vocab: int  # its vocabulary (random token ids)
    demo_context: int  # its sequence length
    demo_batch: int  # global batch of every check (sequences)
    demo_steps: int  # SGD steps each check compares after
    micro_batches: tuple[int, ...]  # micro-batch counts the pipeline is timed with
    timing_d_model: int  # width of the timed pipeline's model
    timing_context: int  # its sequence length
    timing_batch: int  # its global batch (sequences)
    timing_steps: int  # timed steps per schedule (the median is kept)


@dataclass(frozen=True)
class SFTSizes:
    """Chapter 08: the instruction set and the supervised fine-tuning (SFT) run.

    ``loop`` is the tuning run's training-loop configuration (``config.training.TrainConfig``,
    as for pretraining); the rest is what instruction tuning adds around it. The
    model, its context and the data are chapter 04's.
    """

    loop: TrainConfig  # what train() takes, as it takes it
    per_story: int  # training instructions derived from each train-split story
    max_constraints: int  # constraints per instruction, at most
    eval_instructions: int  # held-out (validation split) instructions for the rates
    batch_size: int  # sequences per micro-batch
    eval_batches: int  # validation batches per evaluation (held-out replies)
    seed: int  # the instructions' draws and the data order
    examples_shown: int  # held-out prompts answered before and after, in the chapter


@dataclass(frozen=True)
class DPOSizes:
    """Chapter 09: the on-policy preference pairs and the DPO runs.

    ``loop`` is a DPO run's training-loop configuration (``config.training.TrainConfig``; its
    ``eval_interval`` spaces the held-out pair metrics); the rest is what DPO adds
    around it. The model is chapter 08's.
    """

    loop: TrainConfig  # what train() takes, as it takes it
    pair_prompts: int  # training instructions sampled for the training pairs
    heldout_prompts: int  # validation instructions (not the rates') for held-out pairs
    samples: int  # replies sampled per instruction (chosen: a best, rejected: a worst)
    temperature: float  # of the sampling (1: the model's own distribution)
    top_p: float  # nucleus of the sampling (1: none)
    max_new_tokens: int  # longest sampled reply, in tokens (the context may cut it)
    beta: float  # DPO's beta: how far the policy may move from the reference
    beta_sweep: tuple[float, ...]  # the chapter's sweep of beta
    batch_size: int  # pairs per micro-batch (twice as many sequences)
    seed: int  # sampling and data order
    kl_prompts: int  # held-out prompts whose sampled replies estimate the KL
    gibberish_guard: bool  # pairs treat replies of unknown words as degenerate


@dataclass(frozen=True)
class EvalSizes:
    """Chapter 10: how many items each task has, and how the models are sampled."""

    cloze_items: int  # story-cloze items built from validation stories
    final_word_items: int  # final-word items built from validation stories
    ngram: int  # words per n-gram of the contamination check
    contamination_threshold: float  # an item sharing this share of n-grams is flagged
    samples: int  # stories each model writes for the sample statistics
    sample_tokens: int  # at most this many tokens per sample
    batch_size: int  # sequences per forward pass when scoring
    seed: int  # task building and sampling
    instructions: int  # chapter 08's held-out instructions in the instruction task


@dataclass(frozen=True)
class Profile:
    """One profile: its name, a line saying what it is for, and a section per chapter."""

    name: str
    summary: str
    data: DataSizes
    attention: AttentionSizes
    model: ModelSizes
    train: TrainSizes
    generate: GenerateSizes
    parallel: ParallelSizes
    model_parallel: ModelParallelSizes
    sft: SFTSizes
    dpo: DPOSizes
    eval: EvalSizes
    seed_offset: int = 0  # added to a chapter's own constant seeds (LLMFS_SEED)
    precision: str | None = None  # a chapter's own experiments' precision, if set
