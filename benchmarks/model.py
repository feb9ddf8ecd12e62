"""Our GPT against transformers' LlamaForCausalLM: a training step's time, in one run.

    python benchmarks/model.py                       # the cpu profile's model, fp32
    python benchmarks/model.py --profile gpu --dtype bf16 --batch 8

Builds the profile's model (``GPTConfig.from_profile``, vocabulary size from chapter
01's profile section), copies its weights into ``LlamaForCausalLM`` built from the same
configuration (``hf.hf_config``), checks that both give the same loss, then times one
forward plus backward pass of each on the same batch: the loss against the next tokens,
``loss.backward()``, gradients cleared. The two are timed round after round, in
alternating order, so that both see the same load on the machine; each time is the
fastest of its rounds (the one least disturbed by other work), with the median beside
it. HF runs as for training: SDPA attention and no key/value cache.

Prints milliseconds per step, tokens per second and ``speed-up = HF's time / ours``
(above 1: ours is faster).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout

from llm_from_scratch.model.hf import hf_config, to_hf_state_dict  # noqa: E402
from llm_from_scratch.model.gpt import GPT, GPTConfig  # noqa: E402
from llm_from_scratch.config.profiles import get_profile  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def build(profile: str, dtype: torch.dtype, device: torch.device, seed: int = 0):
    """Our model and HF's, with identical weights, in dtype on device."""
    from transformers import LlamaConfig, LlamaForCausalLM

    P = get_profile(profile)
    config = GPTConfig.from_profile(P.model, P.data.vocab_size)
    torch.manual_seed(seed)
    ours = GPT(config)
    hf_cfg = LlamaConfig(**hf_config(config), attn_implementation="sdpa")
    theirs = LlamaForCausalLM(hf_cfg)
    result = theirs.load_state_dict(to_hf_state_dict(ours), strict=False)
    tied = {"lm_head.weight"} if config.tie_embeddings else set()
    assert set(result.missing_keys) == tied and not result.unexpected_keys, result
    if config.tie_embeddings:
        assert theirs.lm_head.weight is theirs.model.embed_tokens.weight
    return config, ours.to(device, dtype).train(), theirs.to(device, dtype).train()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu", help="whose model (default cpu)")
    parser.add_argument("--dtype", choices=DTYPES, default="fp32")
    parser.add_argument("--device", default=None, help="default: cuda if available")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=None,
                        help="default: the model's context length")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    import transformers

    transformers.logging.set_verbosity_error()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available()
                                          else "cpu"))
    dtype = DTYPES[args.dtype]
    config, ours, theirs = build(args.profile, dtype, device)
    T = args.seq_len or config.context_len
    g = torch.Generator().manual_seed(1)
    idx = torch.randint(config.vocab_size, (args.batch, T + 1), generator=g).to(device)
    x, y = idx[:, :-1], idx[:, 1:]

    def step_ours():
        _, loss = ours(x, targets=y)
        loss.backward()
        ours.zero_grad(set_to_none=True)
        return loss

    def step_hf():
        # HF shifts the labels itself: labels = the inputs, last position dropped.
        loss = theirs(input_ids=x, labels=x, use_cache=False).loss
        loss.backward()
        theirs.zero_grad(set_to_none=True)
        return loss

    with torch.no_grad():  # same function, same weights: the same logits
        a, b = ours(x)[0].float(), theirs(input_ids=x, use_cache=False).logits.float()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times = {"ours": [], "HF": []}
    for _ in range(2):  # warm-up: allocator, kernels, caches
        step_ours(), step_hf()
    order = [("ours", step_ours), ("HF", step_hf)]
    for _ in range(args.rounds):
        order.reverse()  # neither always runs first
        for name, step in order:
            sync()
            start = time.perf_counter()
            step()
            sync()
            times[name].append(time.perf_counter() - start)
    best = {k: min(v) for k, v in times.items()}
    median = {k: statistics.median(v) for k, v in times.items()}
    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"CPU, {torch.get_num_threads()} threads")
    print(f"model of profile {args.profile!r}: {ours.num_parameters():,} parameters, "
          f"{config.n_layers} layers, d_model {config.d_model},")
    print(f"  {config.n_heads} heads ({config.n_kv_heads} kv), vocab "
          f"{config.vocab_size}, tied {config.tie_embeddings}")
    print(f"{where}; {args.dtype}; batch {args.batch} x {T} tokens")
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    print(f"max |logits ours - HF| = {(a - b).abs().max().item():.2e}")
    print(f"forward+backward, {args.rounds} alternating rounds:")
    print(f"  {'':5} {'fastest ms':>10} {'median ms':>10} {'tokens/s':>10}")
    for name, t in best.items():
        print(f"  {name:5} {1e3 * t:10.1f} {1e3 * median[name]:10.1f} "
              f"{args.batch * T / t:10,.0f}")
    ratio = best["HF"] / best["ours"]
    print(f"speed-up (HF time / our time): {ratio:.3f} fastest, "
          f"{median['HF'] / median['ours']:.3f} median")
    if args.json:
        args.json.write_text(json.dumps({
            "device": where, "dtype": args.dtype, "profile": args.profile,
            "batch": args.batch, "seq_len": T,
            "fastest_ms": {k: 1e3 * v for k, v in best.items()},
            "median_ms": {k: 1e3 * v for k, v in median.items()},
            "speedup": ratio}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
