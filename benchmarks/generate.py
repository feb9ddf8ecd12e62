"""Our KV-cache generation against transformers' ``generate``: tokens per second, in
one run, on the same weights.

    python benchmarks/generate.py                          # cpu profile's shape
    python benchmarks/generate.py --model artifacts/cpu/pretrained --lengths 256 512
    python benchmarks/generate.py --profile gpu --dtype bf16 --device cuda

The model is the one in ``--model`` (any folder ``llmfs generate`` reads), else a
randomly initialised model of the profile's shape: the time of a generation step does
not depend on the weights' values. Its RoPE tables are extended to cover the prompt
plus the longest length, so lengths past the trained context can be timed; the
weights do not change. The weights are exported with ``hf.save_hf`` and loaded into
``transformers.LlamaForCausalLM`` (SDPA attention, its default dynamic cache).

Both generate greedily from the same random prompts (``--batch`` of them, all of the
same length, so no padding), with no stop token, so both produce exactly the tokens
asked for; the script checks that they are the same tokens and, where they are not,
reports the first position where they part. Ours and HF's are timed round after
round in alternating order, so that both see the same load on the machine, and each
keeps its fastest round. Our loop without the cache (``use_cache=False``) is timed
too, for the cache's own speed-up.

Tokens per second = generated tokens (over the whole batch) / wall-clock seconds of
the whole call, prompt included. ``ratio`` = our tokens/s / HF's (above 1: ours is
faster).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout

from llm_from_scratch.inference.generate import generate, load_model  # noqa: E402
from llm_from_scratch.model.hf import save_hf  # noqa: E402
from llm_from_scratch.model.gpt import GPT, GPTConfig  # noqa: E402
from llm_from_scratch.config.profiles import get_profile  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def build(args, context_len: int, device: torch.device, dtype: torch.dtype):
    """(ours, HF's, description): identical weights, RoPE for context_len positions."""
    from transformers import LlamaForCausalLM

    if args.model:
        base, _, folder = load_model(args.model)
        what = f"weights from {folder}"
    else:
        P = get_profile(args.profile)
        torch.manual_seed(0)
        base = GPT(GPTConfig.from_profile(P.model, P.data.vocab_size))
        what = f"random weights, shape of profile {P.name!r}"
    config = dataclasses.replace(base.config,
                                 context_len=max(context_len, base.config.context_len))
    ours = GPT(config)
    ours.load_state_dict(base.state_dict())  # the same weights, longer RoPE tables
    ours = ours.to(device, dtype).eval()
    with tempfile.TemporaryDirectory() as tmp:
        save_hf(ours, tmp)
        theirs = LlamaForCausalLM.from_pretrained(tmp, attn_implementation="sdpa")
    theirs = theirs.to(device, dtype).eval()
    theirs.generation_config.eos_token_id = None  # exactly max_new_tokens, as ours
    return ours, theirs, what


def first_difference(ours: list[list[int]], theirs: list[list[int]]):
    """[sequence, position] of the first token where the two parted, or None."""
    for i, (a, b) in enumerate(zip(ours, theirs)):
        for j, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return [i, j]
        if len(a) != len(b):
            return [i, min(len(a), len(b))]
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None,
                        help="a model folder (default: random weights of --profile)")
    parser.add_argument("--profile", default="cpu", help="model shape (default cpu)")
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 256, 512],
                        help="generated tokens per call (default 64 256 512)")
    parser.add_argument("--prompt-len", type=int, default=16)
    parser.add_argument("--batch", type=int, default=1, help="prompts per call (1)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="alternating rounds of ours and HF's per length")
    parser.add_argument("--uncached-rounds", type=int, default=1,
                        help="rounds of our loop without the cache (0: skip)")
    parser.add_argument("--dtype", choices=DTYPES, default="fp32")
    parser.add_argument("--device", default=None, help="default: cuda if available")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads (default: torch's choice)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available()
                                          else "cpu"))
    dtype = DTYPES[args.dtype]
    ours, theirs, what = build(args, args.prompt_len + max(args.lengths), device, dtype)
    c = ours.config
    g = torch.Generator().manual_seed(1)
    prompts = torch.randint(c.vocab_size, (args.batch, args.prompt_len),
                            generator=g).tolist()
    ids = torch.tensor(prompts, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def run_ours(n, use_cache=True):
        return generate(ours, prompts, n, temperature=0, use_cache=use_cache)

    @torch.inference_mode()
    def run_hf(n):
        out = theirs.generate(ids, attention_mask=torch.ones_like(ids),
                              max_new_tokens=n, do_sample=False, pad_token_id=0)
        return out[:, args.prompt_len:].tolist()

    def timed(fn, *a):
        sync()
        start = time.perf_counter()
        out = fn(*a)
        sync()
        return time.perf_counter() - start, out

    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"CPU, {torch.get_num_threads()} threads")
    print(f"model: {what}; {ours.num_parameters():,} parameters, {c.n_layers} layers, "
          f"d_model {c.d_model}, {c.n_heads} heads ({c.n_kv_heads} kv), vocab "
          f"{c.vocab_size:,}")
    print(f"{where}; {args.dtype}; batch {args.batch}, prompt {args.prompt_len} "
          "tokens, greedy; "
          f"transformers {transformers.__version__}, torch {torch.__version__}")
    run_ours(8), run_hf(8)  # warm-up
    rows = []
    for n in args.lengths:
        times = {"ours": [], "HF": []}
        outs = {}
        order = [("ours", run_ours), ("HF", run_hf)]
        for _ in range(args.rounds):
            order.reverse()  # neither always runs first
            for name, fn in order:
                t, outs[name] = timed(fn, n)
                times[name].append(t)
        same = (outs["ours"] == outs["HF"]
                and all(len(o) == n for o in outs["ours"]))
        parted = first_difference(outs["ours"], outs["HF"])
        made = n * args.batch  # generated tokens per call
        row = {"tokens": n, "batch": args.batch, "same_tokens": same,
               "first_difference": parted,
               "ours_tok_s": made / min(times["ours"]),
               "hf_tok_s": made / min(times["HF"]),
               "ours_median_tok_s": made / statistics.median(times["ours"]),
               "hf_median_tok_s": made / statistics.median(times["HF"])}
        row["ratio"] = row["ours_tok_s"] / row["hf_tok_s"]
        if args.uncached_rounds:
            slow = [timed(run_ours, n, False) for _ in range(args.uncached_rounds)]
            assert all(out == outs["ours"] for _, out in slow), "cache changed tokens"
            row["uncached_tok_s"] = made / min(t for t, _ in slow)
            row["cache_speedup"] = row["ours_tok_s"] / row["uncached_tok_s"]
        rows.append(row)
    print(f"fastest of {args.rounds} alternating rounds (median in brackets), "
          "tokens/s:")
    print(f"{'tokens':>7} {'ours (cache)':>18} {'transformers':>18} {'ratio':>6} "
          f"{'no cache':>9} {'cache x':>8} {'same':>5}")
    for r in rows:
        nc = (f"{r['uncached_tok_s']:>9,.0f} {r['cache_speedup']:>7.1f}x"
              if "uncached_tok_s" in r else f"{'-':>9} {'-':>8}")
        ours = f"{r['ours_tok_s']:>9,.0f} ({r['ours_median_tok_s']:>6,.0f})"
        hf = f"{r['hf_tok_s']:>9,.0f} ({r['hf_median_tok_s']:>6,.0f})"
        print(f"{r['tokens']:>7} {ours} {hf} "
              f"{r['ratio']:>5.2f}x {nc} {str(r['same_tokens']):>5}")
    if args.json:
        args.json.write_text(json.dumps({"device": where, "dtype": args.dtype,
                                         "model": what, "rows": rows}, indent=1))
    if not all(r["same_tokens"] for r in rows):
        print("ERROR: our greedy tokens differ from transformers'", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
