"""The `llmfs` command (also `python -m llm_from_scratch`): hand-written glue.

Each subcommand is a thin layer over the package; chapters add the real work
(training, generation) and this file only wires it to the command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import signal
import sys
import time
import typing
from pathlib import Path

import torch

from llm_from_scratch import __version__
from llm_from_scratch.config.profiles import (PROFILE_NAMES, UnknownProfileError,
                                              get_profile)
from llm_from_scratch.config.sizes import DPOSizes, SFTSizes, TrainSizes
from llm_from_scratch.config.runtime import artifacts_dir, pick_device
from llm_from_scratch.data.corpus import DataNotFoundError, local_data_dir
from llm_from_scratch.data.corpus import EOT as EOT_TEXT
from llm_from_scratch.data.prepare import prepare_tokens
from llm_from_scratch.evaluation.harness import TASK_PREFIX, EvalError
from llm_from_scratch.evaluation.report import (LOCAL_TASKS, evaluate_model,
                                                format_card, save_card)
from llm_from_scratch.inference.generate import (check_request, check_sampling,
                                                 decode_stream, generate, load_model,
                                                 stream)
from llm_from_scratch.io.checkpoint import CheckpointError
from llm_from_scratch.model.gpt import GPTConfig
from llm_from_scratch.parallel.data_parallel import PARALLEL_METHODS
from llm_from_scratch.parallel.launch import (LaunchError, close_distributed,
                                              init_distributed, launch_environment,
                                              rank_batch_size)
from llm_from_scratch.parallel.model_parallel import check_layout
from llm_from_scratch.posttrain.chat import converse
from llm_from_scratch.posttrain.chat import ChatFormatError
from llm_from_scratch.posttrain.preferences import PairsFormatError
from llm_from_scratch.recipes.dpo import DPOConfigError, dpo
from llm_from_scratch.recipes.pretrain import final_evaluation, pretrain
from llm_from_scratch.recipes.sft import InstructionSetError, sft
from llm_from_scratch.config.training import TrainConfig
from llm_from_scratch.training.metrics import perplexity
from llm_from_scratch.training.precision import choose_precision
from llm_from_scratch.training.precision import CHOICES as PRECISION_CHOICES


def cmd_info(args: argparse.Namespace) -> int:
    """Say what a run would use: profile, device, data and artifacts."""
    profile = get_profile(args.profile)
    try:
        data = str(local_data_dir() or "the Hugging Face hub (roneneldan/TinyStories)")
    except DataNotFoundError as exc:
        data = f"ERROR: {exc}"
    print(f"llm_from_scratch {__version__} (torch {torch.__version__}, "
          f"Python {platform.python_version()})")
    print(f"profile:   {profile.name} ({profile.summary})")
    device = pick_device()
    print(f"device:    {device}")
    asked = profile.train.loop.precision
    if asked == "auto":
        used, why = choose_precision(device)
        print(f"precision: {used} (auto: {why})")
    else:
        print(f"precision: {asked} (set by the profile)")
    print(f"data:      {data}")
    print(f"artifacts: {artifacts_dir(profile.name)}")
    return 0


def recipe_options(sizes_type, skip: tuple[str, ...], scalars_only: bool = False
                   ) -> dict[str, type]:
    """{field: type} of what a recipe's command overrides, one flag each: the fields
    of its profile section (``sizes_type``) but ``loop`` and those starting with
    ``skip``, then its loop's (TrainConfig; with ``scalars_only``, the numbers and
    strings but ``keep_checkpoints``). The recipe routes each to its place."""
    hints = {**typing.get_type_hints(TrainConfig), **typing.get_type_hints(sizes_type)}
    names = [f.name for f in dataclasses.fields(sizes_type)
             if f.name != "loop" and not f.name.startswith(skip)]
    names += [f.name for f in dataclasses.fields(TrainConfig) if not scalars_only
              or (hints[f.name] in (int, float, str) and f.name != "keep_checkpoints")]
    return {name: hints[name] for name in names}


# The timing, the sweeps, the held-out sizes and the KL estimate belong to the
# chapters, not to a run; DPO's beta has its own flag.
OPTIONS = {"train": recipe_options(TrainSizes, ("timing_", "sweep_")),
           "sft": recipe_options(SFTSizes, ("eval_instructions", "examples_shown"),
                                 scalars_only=True),
           "dpo": recipe_options(DPOSizes, ("beta", "kl_prompts"), scalars_only=True)}
CHOICES = {"precision": PRECISION_CHOICES}  # options with a fixed set of values


def overrides(args: argparse.Namespace, command: str) -> dict:
    """The recipe options given on the command line (lists become tuples)."""
    given = {k: getattr(args, k) for k in OPTIONS[command]
             if getattr(args, k) is not None}
    return {k: tuple(v) if isinstance(v, list) else v for k, v in given.items()}


def cmd_train(args: argparse.Namespace) -> int:
    """Pretrain the profile's model (chapter 04); resumes an interrupted run."""
    changes = overrides(args, "train")
    ds_config = _deepspeed_file(args.deepspeed_config, args.parallel)
    if args.parallel == "deepspeed" and not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")  # before deepspeed's import
    dp = _check_layout(args, launch_environment()[1])  # before any work
    launch = init_distributed(args.backend)  # a single process joins no group
    rank, world = launch.rank, launch.world_size
    try:
        if world > 1:
            # --batch-size is the global batch: each data-parallel rank gets its
            # share of it, so N processes train on the batches one process would.
            batch = get_profile(args.profile).train.batch_size
            rank_batch_size(changes.get("batch_size", batch), dp)  # or an error
            if rank == 0:  # one process makes the tokenizer and shards; the rest wait
                prepare_tokens(args.profile, args.data)
            torch.distributed.barrier()
        result, _, _ = pretrain(args.profile, data_path=args.data, out_dir=args.out,
                                resume=not args.restart, stop_at_step=args.stop_at_step,
                                parallel=args.parallel, ds_config=ds_config,
                                qk_layernorm=args.qk_layernorm, z_loss=args.z_loss,
                                activation_checkpointing=args.activation_checkpointing,
                                tp=args.tp, pp=args.pp, **changes)
    finally:
        close_distributed()
    if rank != 0:
        return 0
    run_dir = result.checkpoint.parent.parent if result.checkpoint else args.out
    print(f"run:        {run_dir}")
    if result.resumed_from and result.resumed_from == result.step:
        print(f"nothing to do: the run was already at step {result.step}")
    elif result.resumed_from:
        print(f"resumed from step {result.resumed_from}")
    rate = result.tokens / result.seconds if result.seconds else 0.0
    print(f"steps:      {result.step:,}, {result.tokens:,} tokens, "
          f"{result.seconds:,.0f} s of training, {rate:,.0f} tokens/s")
    if result.stopped:
        print(f"stopped ({result.stopped}) at step {result.step}; checkpoint "
              f"{result.checkpoint}; run the same command again to resume")
    else:
        final = final_evaluation(result)
        print(f"validation: loss {final['loss']:.4f} (perplexity "
              f"{perplexity(final['loss']):.2f}), {final['bpb']:.4f} bits per byte, "
              f"over {final['tokens']:,} tokens")
    if result.stopped in ("SIGINT", "SIGTERM"):
        return 128 + signal.Signals[result.stopped].value  # the shell's convention
    return 0


def _check_layout(args: argparse.Namespace, world: int) -> int:
    """The data-parallel size of --tp/--pp on ``world`` processes, or a one-line
    error (chapter 07's check_layout) before any work."""
    shape = GPTConfig.from_profile(get_profile(args.profile).model, vocab_size=1)
    dp = check_layout(shape, world, args.tp, args.pp, args.parallel)
    asked = [flag for flag, on in (("--qk-layernorm", args.qk_layernorm),
                                   ("--z-loss", args.z_loss),
                                   ("--activation-checkpointing",
                                    args.activation_checkpointing)) if on]
    if asked and max(args.tp, args.pp) > 1:
        raise LaunchError(f"{asked[0]} is not supported with --tp or --pp: leave "
                          "one of them out")
    return dp


def _deepspeed_file(path: Path | None, parallel: str | None) -> dict | None:
    """The JSON of --deepspeed-config, or a one-line error."""
    if path is None:
        return None
    if parallel != "deepspeed":
        raise LaunchError("--deepspeed-config needs --parallel deepspeed")
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise LaunchError(f"cannot read the DeepSpeed config {path}: {exc}") from None
    if not isinstance(config, dict):
        raise LaunchError(f"the DeepSpeed config {path} is not a JSON object")
    return config


def cmd_generate(args: argparse.Namespace) -> int:
    """Generate text from a trained model, printed as it is produced (chapter 05)."""

    profile = get_profile(args.profile)
    path = args.model or artifacts_dir(profile.name) / "pretrained"
    if args.model is None and not (path / "config.json").exists():
        raise CheckpointError(
            f"no trained model in {path}: train one with `llmfs train --profile "
            f"{profile.name}` (chapter 04), or pass --model")
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, None: None}[args.dtype]
    model, tok, folder = load_model(path, args.tokenizer, pick_device(args.device),
                                    dtype)
    prompts = [tok.encode(p).ids for p in args.prompt]
    longest = max(len(p) for p in prompts)
    room = model.config.context_len - longest
    new = args.max_new_tokens
    if new is None:  # up to 200, as many as fit (a too-long prompt: an error below)
        new = max(0, min(200, room))
    eot = tok.token_to_id(EOT_TEXT)
    options = dict(temperature=0.0 if args.greedy else args.temperature,
                   top_k=args.top_k, top_p=None if args.greedy else args.top_p,
                   seed=args.seed,
                   stop_ids=[] if args.no_stop or eot is None else [eot])
    try:  # a request that cannot run is a one-line error, before any output
        check_request(model, prompts, new)
        check_sampling(options["temperature"], options["top_k"], options["top_p"])
    except ValueError as exc:
        print(f"llmfs: error: {exc}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    if len(prompts) == 1:  # stream: each piece as soon as it is decoded
        produced = []

        def tokens():
            for t in stream(model, prompts[0], new, **options):
                produced.append(t)
                yield t

        print(args.prompt[0], end="", flush=True)
        for piece in decode_stream(tok, tokens()):
            print(piece, end="", flush=True)
        print(flush=True)
        outs = [produced]
    else:  # one batch; each text printed when the batch is done
        outs = generate(model, prompts, new, **options)
        for i, (text, out) in enumerate(zip(args.prompt, outs), 1):
            print(f"=== {i}: {text + tok.decode(out)}", flush=True)
    seconds = time.perf_counter() - start
    n = sum(len(o) for o in outs)
    ended = sum(bool(o) and o[-1] == eot for o in outs)
    why = (f"{ended} of {len(outs)} ended with {EOT_TEXT}" if len(outs) > 1 else
           f"ended with {EOT_TEXT}" if ended else f"stopped after {new} tokens")
    print(f"[{folder}: {n} tokens in {seconds:.2f} s, {n / seconds:,.1f} tokens/s; "
          f"{why}]", file=sys.stderr)
    return 0


def _say_resumed(result) -> None:
    """Say whether a tuning run resumed, or had nothing left to do."""
    if result.resumed_from and result.resumed_from == result.step:
        print(f"nothing to do: the run was already at step {result.step}")
    elif result.resumed_from:
        print(f"resumed from step {result.resumed_from}")


def _stopped(result) -> int:
    """Say where a run that stopped early stands; its exit code (the shell's
    convention after a signal, else 0)."""
    print(f"stopped ({result.stopped}) at step {result.step}; checkpoint "
          f"{result.checkpoint}; run the same command again to resume")
    if result.stopped in ("SIGINT", "SIGTERM"):
        return 128 + signal.Signals[result.stopped].value
    return 0


def cmd_sft(args: argparse.Namespace) -> int:
    """Instruction-tune chapter 04's model (chapter 08); resumes an interrupted run."""
    run = sft(args.profile, mask_prompt=not args.no_mask, base=args.base,
              data_path=args.data, out_dir=args.out, resume=not args.restart,
              stop_at_step=args.stop_at_step, **overrides(args, "sft"))
    result = run.result
    print(f"run:          {run.run_dir}")
    print(f"instructions: {len(run.instructions['train']):,} for training, "
          f"{len(run.instructions['valid']):,} held out (validation split)")
    _say_resumed(result)
    print(f"steps:        {result.step:,}, {result.tokens:,} tokens, "
          f"{result.seconds:,.0f} s of training")
    if result.stopped:
        return _stopped(result)
    val = result.rows("val_loss")
    if val:
        print(f"validation:   loss {val[-1]['val_loss']:.4f} on held-out replies")
    print(f"model:        {run.export}")
    print(f"talk to it:   llmfs chat --model {run.export}")
    return 0


def cmd_dpo(args: argparse.Namespace) -> int:
    """Preference-tune chapter 08's model with DPO (chapter 09); resumes."""
    run = dpo(args.profile, beta=args.beta, sft_dir=args.sft, pairs_file=args.pairs,
              data_path=args.data, out_dir=args.out, resume=not args.restart,
              stop_at_step=args.stop_at_step, **overrides(args, "dpo"))
    result = run.result
    print(f"run:        {run.run_dir}")
    print(f"pairs:      {len(run.pairs['train']):,} for training, "
          f"{len(run.pairs['valid']):,} held out (validation split); beta {run.beta:g}")
    _say_resumed(result)
    print(f"steps:      {result.step:,}, {result.seconds:,.0f} s of training")
    if result.stopped:
        return _stopped(result)
    for last in run.heldout()[-1:]:  # none when every held-out instruction tied
        print(f"held out:   reward accuracy {last['accuracy']:.3f}, margin "
              f"{last['margin']:+.3f}, loss {last['loss']:.4f} "
              f"({last['pairs']} pairs)")
    print(f"model:      {run.export}")
    print(f"talk to it: llmfs chat --model {run.export}")
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    """Talk to an instruction-tuned model (chapter 08): one line of input per turn."""
    model, tok, _ = load_model(args.model, device=pick_device(args.device))
    interactive = sys.stdin.isatty()
    if interactive:
        print("you> ", end="", flush=True)
    replies = converse(
        model, tok, sys.stdin, lambda s: print(s, end="", flush=True),
        lambda s: print(f"llmfs: error: {s}", file=sys.stderr, flush=True),
        temperature=0.0 if args.greedy else args.temperature,
        top_p=None if args.greedy else args.top_p, seed=args.seed,
        max_new_tokens=args.max_new_tokens, marks=interactive)
    return 2 if None in replies else 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate a model on the book's tasks through lm-eval; print its report card
    row (chapter 10)."""
    names = [t.strip() for t in ",".join(args.tasks).split(",") if t.strip()]
    try:
        row, results = evaluate_model(
            args.model, names, args.profile, tokenizer=args.tokenizer,
            device=args.device, batch_size=args.batch_size, limit=args.limit)
    except EvalError as exc:
        print(f"llmfs: error: {exc}", file=sys.stderr)
        return 2
    print(format_card([row]))
    for task, r in results.items():
        if "acc" not in r["metrics"] and task != TASK_PREFIX + "bpb":
            print(f"{task}: {json.dumps(r['metrics'])}")
    if args.out:
        save_card([row], args.out, profile=get_profile(args.profile).name,
                     limit=args.limit)
    print("JSON: " + json.dumps(row))
    return 0


def _add_run_options(parser: argparse.ArgumentParser, out_default: str) -> None:
    """The options every training command shares: data, run folder, restart, stop."""
    parser.add_argument("--data", default=None,
                        help="folder of TinyStories text files (default: $LLMFS_DATA)")
    parser.add_argument("--out", default=None,
                        help=f"run folder (default: {out_default})")
    parser.add_argument("--restart", action="store_true",
                        help="start again instead of resuming a checkpoint")
    parser.add_argument("--stop-at-step", type=int, default=None, metavar="STEP",
                        help="stop cleanly, with a checkpoint, after this step")


def _coefficient(text: str) -> float:
    """A z-loss coefficient: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(
            f"not a coefficient >= 0 (PaLM's is 1e-4): {text!r}")
    return value


def _add_stability_options(parser: argparse.ArgumentParser) -> None:
    """Appendix A's options of `llmfs train`, off by default."""
    group = parser.add_argument_group("stability and memory (appendix A; off by "
                                      "default)")
    group.add_argument("--qk-layernorm", action="store_true",
                       help="an RMSNorm on every head's queries and keys (the model "
                       "is exported as Hugging Face's Qwen3)")
    group.add_argument("--z-loss", type=_coefficient, default=0.0, metavar="COEF",
                       help="add COEF * log(Z)^2 per target to the training loss "
                       "(PaLM: 1e-4)")
    group.add_argument("--activation-checkpointing", action="store_true",
                       help="recompute each block's activations in the backward "
                       "pass: less memory, more compute, the same numbers")


def _add_overrides(group, command: str) -> None:
    """One flag per recipe option of ``command`` (see ``OPTIONS``)."""
    for name, kind in OPTIONS[command].items():
        flag = "--" + name.replace("_", "-")
        if kind is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction,
                               default=None)
        elif name in CHOICES:
            group.add_argument(flag, choices=CHOICES[name],
                               help="auto: bf16 where the hardware computes it "
                               "natively, else fp32 (CPU) or fp16 (older GPU)")
        elif name == "betas":
            group.add_argument(flag, type=float, nargs=2, metavar=("B1", "B2"))
        elif typing.get_origin(kind) is tuple:
            group.add_argument(flag, type=int, nargs="*", metavar="STEP")
        else:
            group.add_argument(flag, type=kind, metavar=name.split("_")[-1].upper())


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line, like every other error of llmfs."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


DEVICE_TYPES = ("cpu", "cuda", "mps")


def _device(text: str) -> str:
    """A torch device name: cpu, cuda, cuda:N or mps."""
    try:
        ok = torch.device(text).type in DEVICE_TYPES
    except RuntimeError:
        ok = False
    if not ok:
        raise argparse.ArgumentTypeError(
            f"invalid device {text!r} (choose from cpu, cuda, cuda:N, mps)")
    return text


def _add_profile(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="auto", type=str.lower,
                        choices=PROFILE_NAMES, help=", ".join(PROFILE_NAMES))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="llmfs", description=__doc__.splitlines()[0])
    # DeepSpeed's launcher puts --local_rank=N before the subcommand (torchrun and
    # it also set LOCAL_RANK, which is what the package reads).
    parser.add_argument("--local_rank", "--local-rank", type=int, default=None,
                        help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help=cmd_info.__doc__)
    _add_profile(info)
    info.set_defaults(func=cmd_info)
    train = sub.add_parser(
        "train", help=cmd_train.__doc__,
        description=cmd_train.__doc__ + " Under torchrun (chapter 06) the processes "
        "train one model data-parallel, each on its share of every global batch; --tp "
        "and --pp (chapter 07) split the model itself.")
    _add_profile(train)
    _add_run_options(train, "artifacts/<profile>/pretrain/<id>")
    train.add_argument("--parallel", choices=PARALLEL_METHODS, default=None,
                       help="how several processes share the training under torchrun "
                       "or deepspeed: ddp (default, PyTorch's DDP), fsdp (FSDP2), "
                       "zero1 (ZeRO stage 1 by hand), deepspeed (its engine)")
    train.add_argument("--deepspeed-config", type=Path, default=None, metavar="FILE",
                       help="DeepSpeed's JSON configuration for --parallel deepspeed "
                       "(default: ZeRO stage 1); the run sets its batch sizes and "
                       "clipping")
    train.add_argument("--tp", type=int, default=1, metavar="N",
                       help="tensor parallelism (chapter 07): every block's matrices "
                       "split over N ranks; more ranks share the batch with "
                       "--parallel fsdp")
    train.add_argument("--pp", type=int, default=1, metavar="N",
                       help="pipeline parallelism (chapter 07): the layers in N "
                       "stages, one a rank, 1F1B over the --grad-accum micro-batches")
    train.add_argument("--backend", choices=["nccl", "gloo"], default=None,
                       help="torch.distributed backend (default: nccl with GPUs, "
                       "gloo without)")
    train.add_argument("--local_rank", "--local-rank", type=int, default=None,
                       help=argparse.SUPPRESS)  # DeepSpeed's, after a script
    _add_overrides(train.add_argument_group(
        "overrides of the profile's training section (TrainConfig and TrainSizes)"),
        "train")
    _add_stability_options(train)
    train.set_defaults(func=cmd_train)

    gen = sub.add_parser("generate", help=cmd_generate.__doc__,
                         description=cmd_generate.__doc__)
    gen.add_argument("--prompt", action="append", required=True,
                     help="text to continue; repeat for a batch of prompts")
    gen.add_argument("--model", type=Path, default=None,
                     help="a Hugging Face directory, a checkpoint or a training run "
                     "(default: artifacts/<profile>/pretrained, chapter 04's export)")
    _add_profile(gen)
    gen.add_argument("--tokenizer", type=Path, default=None,
                     help="tokenizer.json (default: the model folder's, or the "
                     "profile's for a checkpoint)")
    gen.add_argument("--max-new-tokens", type=int, default=None, metavar="N",
                     help="at most this many new tokens (default: 200, or what fits "
                     "the model's context)")
    gen.add_argument("--temperature", type=float, default=0.8, metavar="T",
                     help="0 is greedy; below 1 sharper, above 1 flatter (0.8)")
    gen.add_argument("--top-k", type=int, default=None, metavar="K",
                     help="draw from the K most likely tokens only")
    gen.add_argument("--top-p", type=float, default=0.95, metavar="P",
                     help="draw from the most likely tokens holding P (0.95)")
    gen.add_argument("--greedy", action="store_true",
                     help="always the most likely token (temperature 0, no top-p)")
    gen.add_argument("--seed", type=int, default=None,
                     help="seed the draws, for text that can be reproduced")
    gen.add_argument("--no-stop", action="store_true",
                     help=f"do not stop at {EOT_TEXT}")
    gen.add_argument("--device", default=None, type=_device,
                     help="cpu, cuda, cuda:N, mps (default: the best available)")
    gen.add_argument("--dtype", choices=["fp32", "bf16"], default=None,
                     help="convert the weights (default: as stored)")
    gen.set_defaults(func=cmd_generate)

    tune = sub.add_parser("sft", help=cmd_sft.__doc__, description=cmd_sft.__doc__)
    tune.add_argument("--profile", default="auto", help=", ".join(PROFILE_NAMES))
    tune.add_argument("--base", type=Path, default=None,
                      help="the pretrained Hugging Face directory (default: "
                      "artifacts/<profile>/pretrained, made if missing)")
    _add_run_options(tune, "artifacts/<profile>/sft/<id>")
    tune.add_argument("--no-mask", action="store_true",
                      help="train on every token, the prompt's too (the comparison)")
    _add_overrides(tune.add_argument_group(
        "overrides of the profile's SFTSizes and its loop"), "sft")
    tune.set_defaults(func=cmd_sft)

    pref = sub.add_parser("dpo", help=cmd_dpo.__doc__, description=cmd_dpo.__doc__)
    pref.add_argument("--profile", default="auto", help=", ".join(PROFILE_NAMES))
    pref.add_argument("--sft", type=Path, default=None,
                      help="the SFT model's Hugging Face directory (default: "
                      "artifacts/<profile>/chat, made if missing)")
    pref.add_argument("--pairs", type=Path, default=None,
                      help="training pairs, JSONL rows of prompt, chosen, rejected "
                      "(default: sampled from the SFT model once, then reused)")
    pref.add_argument("--beta", type=float, default=None,
                      help="DPO's beta, > 0 (default: the profile's)")
    _add_run_options(pref, "artifacts/<profile>/preference/runs/<id>")
    group = pref.add_argument_group("overrides of the profile's DPOSizes and its "
                                    "loop (TrainConfig)")
    _add_overrides(group, "dpo")
    pref.set_defaults(func=cmd_dpo)

    talk = sub.add_parser("chat", help=cmd_chat.__doc__,
                          description=cmd_chat.__doc__ + " Replies are streamed; "
                          "the conversation is kept while it fits the context.")
    talk.add_argument("--model", type=Path, required=True,
                      help="an instruction-tuned model folder (llmfs sft writes "
                      "artifacts/<profile>/chat)")
    talk.add_argument("--max-new-tokens", type=int, default=None, metavar="N",
                      help="at most this many tokens a reply (default: what fits)")
    talk.add_argument("--temperature", type=float, default=0.8, metavar="T",
                      help="0 is greedy (0.8)")
    talk.add_argument("--top-p", type=float, default=0.95, metavar="P",
                      help="draw from the most likely tokens holding P (0.95)")
    talk.add_argument("--greedy", action="store_true",
                      help="always the most likely token")
    talk.add_argument("--seed", type=int, default=None, help="seed the draws")
    talk.add_argument("--device", default=None,
                      help="cpu, cuda, mps (default: the best available)")
    talk.set_defaults(func=cmd_chat)

    evaluate = sub.add_parser("eval", help=cmd_eval.__doc__.split("\n")[0],
                        description=" ".join(cmd_eval.__doc__.split()))
    evaluate.add_argument("--model", type=Path, required=True,
                    help="a Hugging Face directory, a checkpoint or a training run")
    evaluate.add_argument("--tasks", action="append", default=None, metavar="TASKS",
                    help=f"comma-separated: {', '.join(LOCAL_TASKS)} or task .yaml "
                    "files (default: all five)")
    evaluate.add_argument("--profile", default="auto",
                    help="whose validation stories and sizes: " + ", ".join(PROFILE_NAMES))
    evaluate.add_argument("--limit", type=int, default=None, metavar="N",
                    help="only the first N items of each task")
    evaluate.add_argument("--batch-size", type=int, default=16, metavar="N",
                    help="sequences per forward pass (16)")
    evaluate.add_argument("--tokenizer", type=Path, default=None,
                    help="tokenizer.json (default: the model folder's)")
    evaluate.add_argument("--device", default=None,
                          help="cpu, cuda, mps (default: the best)")
    evaluate.add_argument("--out", type=Path, default=None,
                    help="also save the row as a report card JSON file")
    evaluate.set_defaults(func=cmd_eval)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "tasks", 0) is None:
        args.tasks = list(LOCAL_TASKS)
    try:
        return args.func(args)
    except (UnknownProfileError, DataNotFoundError, CheckpointError,
            ChatFormatError, InstructionSetError, LaunchError, DPOConfigError,
            PairsFormatError) as exc:
        print(f"llmfs: error: {exc}", file=sys.stderr)
        return 2
    except FloatingPointError as exc:  # training.diagnosis.NonFiniteLossError: its diagnosis
        print(f"llmfs: training stopped: {exc}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
