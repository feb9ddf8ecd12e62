"""Chapter 05: decoding, the KV cache, padded batches, streaming and model loading.

References: Hugging Face's logits warpers and ``LlamaForCausalLM.generate`` on the
same weights, and our own uncached forward pass.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_from_scratch.inference.generate import (KVCache, check_request, decode_stream,
                                                 decode_steps, find_weights, generate,
                                                 left_pad, load_model, make_caches,
                                                 next_token_probs, padding_mask,
                                                 sample_next, stream, top_k_filter,
                                                 top_p_filter)
from llm_from_scratch.model.hf import CheckpointError, save_hf
from llm_from_scratch.model.gpt import GPT, GPTConfig

pytestmark = pytest.mark.usefixtures("one_thread")

GREEDY = dict(temperature=0)
# Cached and uncached passes compute the same float32 function with sums in another
# order (one query row against many). Observed gaps: 1.7e-6 (smoke model), 9.5e-6
# (cpu model, logits up to 17); 1e-4 is about ten times the larger.
CACHE_ATOL = 1e-4


def small_model(n_kv_heads: int = 2, seed: int = 0, context_len: int = 96,
                vocab_size: int = 300) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=vocab_size, n_layers=2, n_heads=4,
                         n_kv_heads=n_kv_heads, d_model=64,
                         context_len=context_len)).eval()


PROMPTS = [[5, 6, 7, 8, 9, 10, 11], [20, 21], [40, 41, 42, 43]]


# --- decoding strategies ---------------------------------------------------------

@pytest.mark.parametrize("temperature,top_k,top_p", [
    (0.7, None, None), (1.0, 5, None), (1.0, None, 0.9), (1.3, 40, 0.95),
    (0.5, 1, None), (1.0, None, 0.01)])
def test_filters_match_transformers_logits_warpers(temperature, top_k, top_p):
    # Same kept tokens and the same float32 softmax over them: they must agree to
    # float32 rounding of the softmax (1e-6 on probabilities).
    from transformers import (TemperatureLogitsWarper, TopKLogitsWarper,
                              TopPLogitsWarper)

    torch.manual_seed(1)
    logits = torch.randn(6, 1000) * 3
    hf = TemperatureLogitsWarper(temperature)(None, logits.clone())
    if top_k:
        hf = TopKLogitsWarper(top_k)(None, hf)
    if top_p:
        hf = TopPLogitsWarper(top_p)(None, hf)
    ours = next_token_probs(logits, temperature, top_k, top_p)
    theirs = torch.softmax(hf, dim=-1)
    assert torch.equal(ours > 0, theirs > 0)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)


def test_top_p_on_a_distribution_followed_by_hand():
    logits = torch.tensor([0.5, 0.3, 0.15, 0.05]).log()
    kept = next_token_probs(logits, top_p=0.75)
    torch.testing.assert_close(kept, torch.tensor([0.625, 0.375, 0.0, 0.0]))
    assert next_token_probs(logits, top_p=0.5).tolist() == [1.0, 0.0, 0.0, 0.0]
    assert (next_token_probs(logits, top_p=1.0) > 0).all()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-8, 8), min_size=2, max_size=40), st.floats(0.05, 0.99))
def test_top_p_keeps_the_smallest_set_that_reaches_p(values, p):
    logits = torch.tensor(values, dtype=torch.float64)
    probs = torch.softmax(logits, dim=-1)
    kept = top_p_filter(logits, p) > float("-inf")
    mass = probs[kept].sum().item()
    assert mass >= p - 1e-9  # reaches p ...
    least = probs[kept].min().item()
    assert mass - least < p + 1e-9  # ... and would not without its least likely
    assert probs[kept].max() == probs.max()  # a most likely token (ties: any one)


def test_top_k_keeps_exactly_k_tokens_and_temperature_zero_is_argmax():
    torch.manual_seed(0)
    logits = torch.randn(3, 50)
    assert ((top_k_filter(logits, 7) > float("-inf")).sum(-1) == 7).all()
    assert torch.equal(top_k_filter(logits, 500), logits)  # k above V keeps all
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    assert torch.equal(sample_next(logits, temperature=0, generator=g),
                       logits.argmax(-1))
    assert torch.equal(g.get_state(), state)  # greedy draws no random numbers


def test_sampled_frequencies_follow_the_filtered_distribution():
    # 40,000 draws: each frequency within 5 binomial standard deviations of its
    # probability (a false alarm about once in 3 million per token); the token that
    # top-p removed is never drawn.
    logits = torch.tensor([2.0, 1.5, 1.0, 0.2, -1.0, -3.0])
    probs = next_token_probs(logits, temperature=0.9, top_p=0.95)
    assert probs[-1] == 0
    g = torch.Generator().manual_seed(0)
    n = 40_000
    draws = sample_next(logits.expand(n, -1), temperature=0.9, top_p=0.95,
                        generator=g)
    freq = torch.bincount(draws, minlength=6).double() / n
    std = (probs.double() * (1 - probs.double()) / n).sqrt()
    assert ((freq - probs.double()).abs() <= 5 * std + 1e-12).all(), (freq, probs)
    assert freq[-1] == 0


@pytest.mark.parametrize("options,message", [
    (dict(temperature=-1.0), "temperature"), (dict(top_k=0), "top_k"),
    (dict(top_p=0.0), "top_p"), (dict(top_p=1.5), "top_p")])
def test_bad_sampling_settings_are_clear_errors(options, message):
    with pytest.raises(ValueError, match=message):
        next_token_probs(torch.zeros(10), **options)
    with pytest.raises(ValueError, match=message):
        generate(small_model(), [[1, 2]], 3, **options)


# --- the cache ---------------------------------------------------------------------

def test_kv_cache_writes_in_place_and_refuses_to_overflow():
    cache = KVCache(batch=2, n_kv_heads=3, max_len=5, head_dim=4)
    ptr = cache.k.data_ptr()
    k1, v1 = torch.randn(2, 3, 3, 4), torch.randn(2, 3, 3, 4)
    k, v = cache.update(k1, v1)
    assert k.shape == (2, 3, 3, 4) and torch.equal(k, k1) and torch.equal(v, v1)
    k2, v2 = torch.randn(2, 3, 1, 4), torch.randn(2, 3, 1, 4)
    k, v = cache.update(k2, v2)
    assert torch.equal(k, torch.cat([k1, k2], dim=2)) and cache.pos == 4
    assert cache.k.data_ptr() == ptr and k.data_ptr() == ptr  # no reallocation
    with pytest.raises(RuntimeError, match="overflows"):
        cache.update(torch.randn(2, 3, 2, 4), torch.randn(2, 3, 2, 4))


def test_make_caches_follow_the_model_layers_heads_and_dtype():
    model = small_model(n_kv_heads=1).to(torch.bfloat16)
    caches = make_caches(model, batch=3, max_len=17)
    assert len(caches) == model.config.n_layers
    assert caches[0].k.shape == (3, 1, 17, model.config.head_dim)
    assert caches[0].k.dtype == torch.bfloat16


@pytest.mark.parametrize("n_kv_heads", [4, 2, 1], ids=["MHA", "GQA", "MQA"])
def test_cached_logits_match_the_uncached_forward(n_kv_heads):
    model = small_model(n_kv_heads)
    ids = torch.randint(0, 300, (2, 40), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        full, _ = model(ids)
        caches = make_caches(model, 2, 40)
        steps = [model(ids[:, :9], kv_caches=caches)[0]]
        for pos in range(9, 40):
            steps.append(model(ids[:, pos:pos + 1], kv_caches=caches,
                               start_pos=pos)[0])
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=CACHE_ATOL, rtol=0)


@pytest.mark.parametrize("n_kv_heads", [4, 2, 1], ids=["MHA", "GQA", "MQA"])
def test_cached_and_uncached_greedy_generation_give_identical_tokens(n_kv_heads):
    model = small_model(n_kv_heads)
    for prompts in (PROMPTS, [PROMPTS[0]]):
        cached = generate(model, prompts, 40, **GREEDY)
        uncached = generate(model, prompts, 40, use_cache=False, **GREEDY)
        assert cached == uncached
        assert all(len(o) == 40 for o in cached)


def test_padded_batch_gives_each_prompt_the_tokens_it_gets_alone():
    model = small_model()
    batched = generate(model, PROMPTS, 30, **GREEDY)
    assert batched == [generate(model, [p], 30, **GREEDY)[0] for p in PROMPTS]


def test_padded_prefill_logits_match_each_prompt_alone():
    model = small_model()
    ids, pads = left_pad(PROMPTS)
    L = ids.size(1)
    positions = (torch.arange(L)[None, :] - pads[:, None]).clamp(min=0)
    with torch.no_grad():
        logits, _ = model(ids, positions=positions, attn_mask=padding_mask(pads, L, L))
        for row, p in enumerate(PROMPTS):
            alone, _ = model(torch.tensor([p]))
            torch.testing.assert_close(logits[row, L - len(p):], alone[0],
                                       atol=CACHE_ATOL, rtol=0)
    assert torch.isfinite(logits).all()  # padding queries see themselves: no NaN


def test_padding_mask_hides_padding_keys_and_keeps_rows_non_empty():
    mask = padding_mask(torch.tensor([2, 0]), 4, 4)[:, 0]  # (B, t_q, t_k)
    assert mask[0, 3].tolist() == [False, False, True, True]
    assert mask[0, 0].tolist() == [True, False, False, False]  # padding sees itself
    assert torch.equal(mask[1], torch.ones(4, 4, dtype=torch.bool).tril())
    step = padding_mask(torch.tensor([2, 0]), 1, 6)[:, 0, 0]  # one new query
    assert step.tolist() == [[False, False, True, True, True, True], [True] * 6]


def test_seeded_sampling_is_reproducible_and_does_not_depend_on_the_cache():
    model = small_model()
    opts = dict(temperature=1.0, top_k=50, top_p=0.9, seed=7)
    a = generate(model, PROMPTS, 25, **opts)
    assert a == generate(model, PROMPTS, 25, **opts)
    assert a == generate(model, PROMPTS, 25, use_cache=False, **opts)
    assert a != generate(model, PROMPTS, 25, **{**opts, "seed": 8})


def test_each_sequence_stops_at_its_first_stop_id():
    model = small_model()
    free = generate(model, PROMPTS, 30, **GREEDY)
    stop = free[0][5]
    stopped = generate(model, PROMPTS, 30, stop_ids=[stop], **GREEDY)
    for row, out in zip(free, stopped):
        cut = row.index(stop) + 1 if stop in row else len(row)
        assert out == row[:cut]  # up to and with the stop id, the rest unchanged
    steps = list(decode_steps(model, [PROMPTS[0]], 30, stop_ids=[stop], **GREEDY))
    assert len(steps) == free[0].index(stop) + 1  # the loop ends when all stopped


def test_stream_yields_the_tokens_of_generate_one_at_a_time():
    model = small_model()
    tokens = stream(model, PROMPTS[1], 20, temperature=0.8, seed=3)
    first = next(tokens)
    rest = list(tokens)
    assert [first, *rest] == generate(model, [PROMPTS[1]], 20, temperature=0.8,
                                      seed=3)[0]


def test_greedy_generation_matches_transformers_generate(tmp_path):
    # Reference: LlamaForCausalLM.generate on the exported weights, one prompt at a
    # time and as a left-padded batch with an attention mask.
    from transformers import LlamaForCausalLM

    model = small_model(n_kv_heads=2)
    hf = LlamaForCausalLM.from_pretrained(save_hf(model, tmp_path)).eval()
    hf.generation_config.eos_token_id = None
    ours = generate(model, PROMPTS, 25, **GREEDY)
    for p, o in zip(PROMPTS, ours):
        out = hf.generate(torch.tensor([p]), max_new_tokens=25, do_sample=False,
                          pad_token_id=0)
        assert out[0, len(p):].tolist() == o
    ids, pads = left_pad(PROMPTS)
    mask = (torch.arange(ids.size(1))[None, :] >= pads[:, None]).long()
    out = hf.generate(ids, attention_mask=mask, max_new_tokens=25, do_sample=False,
                      pad_token_id=0)
    assert out[:, ids.size(1):].tolist() == ours


def test_requests_that_cannot_run_are_clear_errors():
    model = small_model(context_len=32)
    with pytest.raises(ValueError, match="context_len"):
        generate(model, [[1] * 20], 13)
    assert check_request(model, [[1] * 20], 12) == 32  # exactly fills the context
    with pytest.raises(ValueError, match="at least one token"):
        generate(model, [[1, 2], []], 3)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        generate(model, [[1, 300]], 3)
    assert generate(model, [[1, 2]], 0) == [[]]


# --- text: streaming and loading --------------------------------------------------

@pytest.fixture(scope="module")
def gpt2_tokenizer(gpt2_files):
    """GPT-2's tokenizer (HF tokenizers) from the vocabulary and merges in the data
    folder: it splits emoji and CJK characters over several tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    tok = Tokenizer(models.BPE.from_file(*map(str, gpt2_files)))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return tok


@settings(max_examples=80, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_decode_stream_never_splits_a_character(gpt2_tokenizer, text):
    ids = gpt2_tokenizer.encode(text).ids
    pieces = list(decode_stream(gpt2_tokenizer, ids))
    assert "".join(pieces) == gpt2_tokenizer.decode(ids)
    if "\ufffd" not in text:
        assert all("\ufffd" not in p for p in pieces)


def test_decode_stream_holds_back_a_split_emoji(gpt2_tokenizer):
    ids = gpt2_tokenizer.encode("cat \U0001F408!").ids
    broken = [gpt2_tokenizer.decode([t]) for t in ids]
    assert any("\ufffd" in b for b in broken)  # the emoji is split over tokens
    assert list(decode_stream(gpt2_tokenizer, ids)) == ["cat", " \U0001F408", "!"]


@pytest.fixture(scope="module")
def story_tokenizer(valid_stories):
    from llm_from_scratch.data.tokenizer import train_hf_tokenizer

    return train_hf_tokenizer(valid_stories[:200], 300)


def test_load_model_reads_a_hugging_face_directory(tmp_path, story_tokenizer):
    model = small_model()
    save_hf(model, tmp_path, story_tokenizer)
    loaded, tok, folder = load_model(tmp_path)
    assert folder == tmp_path and tok.to_str() == story_tokenizer.to_str()
    assert generate(loaded, PROMPTS, 10, **GREEDY) == generate(model, PROMPTS, 10,
                                                               **GREEDY)


def _write_checkpoint(run_dir, model, tokenizer):
    from llm_from_scratch.io.checkpoint import save_checkpoint
    from llm_from_scratch.training.optim import AdamW
    from llm_from_scratch.io.runs import tokenizer_digest

    state = {"step": 3, "tokens": 0, "seconds": 0.0,
             "config": {"model": dataclasses.asdict(model.config), "profile": "smoke",
                        "tokenizer": tokenizer_digest(tokenizer)}}
    return save_checkpoint(run_dir / "checkpoints", model,
                           AdamW(model.parameters()), state)


def test_load_model_reads_checkpoints_and_run_folders(tmp_path, story_tokenizer):
    model = small_model(n_kv_heads=1, seed=4)
    ckpt = _write_checkpoint(tmp_path, model, story_tokenizer)
    (tmp_path / "tok.json").write_text(story_tokenizer.to_str())
    expected = generate(model, PROMPTS, 10, **GREEDY)
    for path in (tmp_path, tmp_path / "checkpoints", ckpt):
        loaded, _, folder = load_model(path, tokenizer=tmp_path / "tok.json")
        assert folder == ckpt
        assert generate(loaded, PROMPTS, 10, **GREEDY) == expected


def test_load_model_rejects_damaged_foreign_and_unknown_folders(tmp_path,
                                                                story_tokenizer):
    from llm_from_scratch.data.tokenizer import train_hf_tokenizer

    model = small_model()
    ckpt = _write_checkpoint(tmp_path / "run", model, story_tokenizer)
    other = train_hf_tokenizer(["a completely different corpus"] * 5, 280)
    (tmp_path / "other.json").write_text(other.to_str())
    with pytest.raises(CheckpointError, match="another tokenizer"):
        load_model(ckpt, tokenizer=tmp_path / "other.json")
    weights = ckpt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])  # truncated
    (tmp_path / "tok.json").write_text(story_tokenizer.to_str())
    with pytest.raises(CheckpointError, match="truncated or damaged"):
        load_model(ckpt, tokenizer=tmp_path / "tok.json")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="not a model folder"):
        find_weights(tmp_path / "empty")
    with pytest.raises(CheckpointError, match="no such folder"):
        find_weights(tmp_path / "missing")
    save_hf(model, tmp_path / "hf")  # weights without a tokenizer
    with pytest.raises(CheckpointError, match="no tokenizer.json"):
        load_model(tmp_path / "hf")
