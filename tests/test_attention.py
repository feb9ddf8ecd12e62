"""Chapter 02: the attention layer and the tiled attention, against references.

Tolerances. Everything here runs in float32 on small shapes with outputs of size about
one. Two correct float32 implementations differ only in the order of their sums and in
where the softmax is normalised: a few units in the last place (float32's is 6e-8),
times a small factor for sums over tens of keys. The measured differences are 1e-7 to
1e-6, so an absolute tolerance of 1e-5 is tight enough to catch any real error (a wrong
mask or scale changes outputs by 1e-2 or more) and loose enough for any CPU's kernels.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from llm_from_scratch.model.attention import (CausalSelfAttention, apply_rope,
                                              causal_mask, kv_cache_bytes,
                                              naive_attention, repeat_kv, rope_cache)
from llm_from_scratch.model.kernels.tiled import tiled_attention
from support import ConcatCache

ATOL = 1e-5  # float32, reordered sums: see the module docstring


def qkv(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=g) for _ in range(3)]


@pytest.mark.parametrize("causal", [False, True])
def test_naive_attention_matches_sdpa(causal):
    q, k, v = qkv(2, 3, 37, 16)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    out = naive_attention(q, k, v, causal)
    torch.testing.assert_close(out, ref, atol=ATOL, rtol=0)


def test_causal_mask_is_shifted_for_queries_after_cached_keys():
    mask = causal_mask(2, 5)  # 2 new queries at positions 3 and 4
    assert mask.tolist() == [[True, True, True, True, False], [True] * 5]
    assert torch.equal(causal_mask(4, 4), torch.ones(4, 4, dtype=torch.bool).tril())


def per_head_reference(attn: CausalSelfAttention, x, cos, sin):
    """The layer written head by head with naive_attention: query head i reads key/value
    head i // (n_heads / n_kv_heads)."""
    B, T, _ = x.shape
    hs, group = attn.head_dim, attn.n_heads // attn.n_kv_heads
    q = attn.q_proj(x).view(B, T, attn.n_heads, hs).transpose(1, 2)
    k = attn.k_proj(x).view(B, T, attn.n_kv_heads, hs).transpose(1, 2)
    v = attn.v_proj(x).view(B, T, attn.n_kv_heads, hs).transpose(1, 2)
    q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    heads = [naive_attention(q[:, i], k[:, i // group], v[:, i // group])
             for i in range(attn.n_heads)]
    return attn.o_proj(torch.cat(heads, dim=-1))


@pytest.mark.parametrize("n_kv_heads", [4, 2, 1], ids=["multi-head", "gqa", "mqa"])
def test_causal_self_attention_matches_per_head_naive(n_kv_heads):
    torch.manual_seed(0)
    attn = CausalSelfAttention(32, n_heads=4, n_kv_heads=n_kv_heads)
    x = torch.randn(2, 19, 32)
    cos, sin = rope_cache(8, 19)
    with torch.no_grad():
        ref = per_head_reference(attn, x, cos, sin)
        torch.testing.assert_close(attn(x, cos, sin), ref, atol=ATOL, rtol=0)


def test_gqa_projections_shrink_by_the_group_size():
    attn = CausalSelfAttention(64, n_heads=8, n_kv_heads=2)
    assert attn.q_proj.weight.shape == (64, 64)
    assert attn.k_proj.weight.shape == attn.v_proj.weight.shape == (16, 64)
    x = torch.arange(2.0).view(1, 2, 1, 1)
    assert repeat_kv(x, 4).flatten().tolist() == [0, 0, 0, 0, 1, 1, 1, 1]


def test_kv_cache_bytes_counts_keys_and_values_per_layer_head_and_token():
    # Llama-2-7B shape, 4096 tokens, fp16: 2 * 32 * 32 * 128 * 4096 * 2 bytes = 2 GiB
    assert kv_cache_bytes(32, 32, 128, 4096) == 2 * 2**30
    assert kv_cache_bytes(32, 8, 128, 4096) == 2**30 // 2


def rope_interleaved_complex(x, positions, theta=10000.0):
    """RoPE as in RoFormer / Meta's Llama: neighbouring pairs as complex numbers."""
    hd = x.size(-1)
    freqs = theta ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)
    rot = torch.polar(torch.ones(1, dtype=torch.float64), positions[:, None] * freqs)
    z = torch.view_as_complex(x.double().reshape(*x.shape[:-1], hd // 2, 2))
    return torch.view_as_real(z * rot).flatten(-2).to(x.dtype)


def test_rope_matches_complex_formulation_up_to_a_fixed_permutation():
    # Reference: float64 complex multiplication. Float32 angles of up to 255 radians
    # carry an absolute error of about 255 * 6e-8 = 2e-5 in the worst pair, hence 1e-4.
    hd, T = 32, 256
    x = qkv(2, 3, T, hd)[0]
    perm = torch.cat([torch.arange(0, hd, 2), torch.arange(1, hd, 2)])
    cos, sin = rope_cache(hd, T)
    ours = apply_rope(x[..., perm], cos, sin)
    ref = rope_interleaved_complex(x, torch.arange(T, dtype=torch.float64))[..., perm]
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=0)


def test_rope_matches_hf_llama_rotary_embedding():
    # Reference: transformers' own Llama rotary code, same float32 arithmetic: 1e-6.
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import (
        LlamaRotaryEmbedding,
        apply_rotary_pos_emb,
    )

    cfg = LlamaConfig(hidden_size=64, num_attention_heads=4, rope_theta=10000.0,
                      max_position_embeddings=64)
    q, k, _ = qkv(2, 4, 50, 16)
    position_ids = torch.arange(50)[None].expand(2, 50)
    cos_hf, sin_hf = LlamaRotaryEmbedding(cfg)(q, position_ids)
    q_hf, k_hf = apply_rotary_pos_emb(q, k, cos_hf, sin_hf)
    cos, sin = rope_cache(16, 64)
    cos, sin = cos[:50], sin[:50]  # the rows of the 50 positions
    torch.testing.assert_close(apply_rope(q, cos, sin), q_hf, atol=1e-6, rtol=0)
    torch.testing.assert_close(apply_rope(k, cos, sin), k_hf, atol=1e-6, rtol=0)


def test_rope_keeps_bfloat16_queries_bfloat16_under_autocast():
    # The model's RoPE tables are float32; under autocast q and k come out of the
    # projections in bfloat16 and must reach SDPA in bfloat16, not upcast by the
    # tables. Values: within one bfloat16 rounding (2**-8 relative) of float32.
    layer = CausalSelfAttention(64, 4, 2)
    cos, sin = rope_cache(16, 32)  # float32
    x = torch.randn(2, 32, 64)
    seen = []
    with torch.autocast("cpu", dtype=torch.bfloat16):
        q = layer.q_proj(x).view(2, 32, 4, 16).transpose(1, 2)
        seen.append(apply_rope(q, cos, sin).dtype)
        y = layer(x, cos, sin)
    assert q.dtype == torch.bfloat16 and seen == [torch.bfloat16]
    assert y.dtype == torch.bfloat16
    ref = apply_rope(q.float(), cos, sin)
    torch.testing.assert_close(apply_rope(q, cos, sin).float(), ref,
                               atol=4 * 2**-8 * ref.abs().max().item(), rtol=0)


def test_rope_scores_depend_only_on_the_offset():
    # The same query/key pair at positions (n + d, n) for n = 0, 300, 900: equal scores
    # up to float32 angle rounding (angles up to ~1000 rad: 1e-4 absolute).
    hd = 32
    q, k = torch.randn(2, hd, generator=torch.Generator().manual_seed(1))
    cos, sin = rope_cache(hd, 1100)
    offsets = torch.arange(100)

    def scores(n):
        qp, kp = n + offsets, torch.full_like(offsets, n)
        qr, kr = apply_rope(q, cos[qp], sin[qp]), apply_rope(k, cos[kp], sin[kp])
        return (qr * kr).sum(-1)

    ref = scores(0)
    assert ref.std() > 0.1  # the scores do vary with the offset
    for n in (300, 900):
        torch.testing.assert_close(scores(n), ref, atol=1e-4, rtol=0)


def test_causal_self_attention_matches_hf_llama_attention():
    # Reference: transformers' LlamaAttention (SDPA path) with the same weights, GQA.
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import (
        LlamaAttention,
        LlamaRotaryEmbedding,
    )

    cfg = LlamaConfig(hidden_size=64, num_attention_heads=8, num_key_value_heads=2,
                      max_position_embeddings=32, attention_bias=False)
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(0)
    hf = LlamaAttention(cfg, layer_idx=0).eval()
    ours = CausalSelfAttention(64, 8, 2)
    ours.load_state_dict(hf.state_dict())  # same names, same shapes
    x = torch.randn(2, 21, 64)
    position_ids = torch.arange(21)[None].expand(2, 21)
    with torch.no_grad():
        ref, _ = hf(x, LlamaRotaryEmbedding(cfg)(x, position_ids), attention_mask=None)
        cos, sin = rope_cache(8, 32)
        torch.testing.assert_close(ours(x, cos[:21], sin[:21]), ref, atol=ATOL, rtol=0)


def test_cached_attention_matches_one_pass():
    # Chunks of several tokens after cached ones (shifted mask) and single tokens.
    torch.manual_seed(0)
    attn = CausalSelfAttention(32, 4, 2)
    x = torch.randn(2, 17, 32)
    cos, sin = rope_cache(8, 17)
    cache, outs, start = ConcatCache(), [], 0
    with torch.no_grad():
        full = attn(x, cos, sin)
        for stop in (5, 11, 12, 13, 17):
            rows = slice(start, stop)  # positions of this chunk
            outs.append(attn(x[:, rows], cos[rows], sin[rows], kv_cache=cache))
            start = stop
    assert cache.k.shape == (2, 2, 17, 8)  # the cache holds n_kv_heads, not n_heads
    torch.testing.assert_close(torch.cat(outs, dim=1), full, atol=ATOL, rtol=0)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("T", [16, 50, 64])  # one tile, partial last tile, whole tiles
def test_tiled_attention_matches_sdpa(causal, T):
    q, k, v = qkv(2, 3, T, 16, seed=T)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    torch.testing.assert_close(tiled_attention(q, k, v, causal, block=16), ref,
                               atol=ATOL, rtol=0)


def test_tiled_attention_survives_scores_that_overflow_a_plain_exp():
    # Scores near 1000: exp() overflows float32, the online softmax must not.
    q, k, v = qkv(1, 1, 40, 16)
    q, k = q * math.sqrt(1000), k * math.sqrt(1000)
    out = tiled_attention(q, k, v, True, block=16)
    assert torch.isfinite(out).all()
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(out, ref, atol=ATOL, rtol=0)
