"""The GPT of chapter 03: its parts, its accounting and its forward pass."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from llm_from_scratch.model.gpt import (GPT, MLP, Block, GPTConfig, RMSNorm,
                                        chinchilla_tokens, flops_per_token,
                                        matmul_parameters, parameter_counts,
                                        swiglu_hidden, training_memory)
from llm_from_scratch.config.profiles import PROFILES
from support import ConcatCache

TINY = GPTConfig(vocab_size=97, n_layers=2, n_heads=4, n_kv_heads=2, d_model=32,
                 context_len=24)


def tiny(**changes) -> GPTConfig:
    return dataclasses.replace(TINY, **changes)


def tokens(config: GPTConfig, B: int = 2, T: int | None = None, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(config.vocab_size, (B, T or config.context_len), generator=g)


def test_rmsnorm_matches_torch_rmsnorm():
    # Reference: torch.nn.RMSNorm, same eps and weight. fp32 tolerance 1e-6: the two
    # differ only in the order of float32 roundings on values of order 1.
    torch.manual_seed(0)
    x = 3 + 2 * torch.randn(4, 7, 48)
    ours, ref = RMSNorm(48, eps=1e-5), nn.RMSNorm(48, eps=1e-5)
    with torch.no_grad():
        ours.weight.normal_()
        ref.weight.copy_(ours.weight)
    torch.testing.assert_close(ours(x), ref(x), atol=1e-6, rtol=1e-6)


def test_rmsnorm_keeps_the_input_dtype_and_normalises_in_float32():
    x = (100 * torch.randn(3, 64)).to(torch.bfloat16)
    y = RMSNorm(64).to(torch.bfloat16)(x)
    assert y.dtype == torch.bfloat16
    rms = y.float().pow(2).mean(-1).sqrt()
    torch.testing.assert_close(rms, torch.ones(3), atol=1e-2, rtol=0)


def test_swiglu_hidden_follows_the_two_thirds_rule():
    assert swiglu_hidden(4096, 256) == 11008  # Llama 7B's hidden width
    assert swiglu_hidden(768) == 2048
    for d in (64, 256, 1000):
        hidden = swiglu_hidden(d)
        assert hidden % 64 == 0 and 8 * d / 3 <= hidden < 8 * d / 3 + 64
        mlp = MLP(d, hidden)
        n = sum(p.numel() for p in mlp.parameters())
        assert abs(n - 8 * d * d) <= 3 * d * 64  # GPT-2's 8d^2, up to the rounding


def test_block_keeps_the_shape_and_has_no_bias():
    block = Block(32, 4, 2, swiglu_hidden(32))
    x = torch.randn(2, 5, 32)
    from llm_from_scratch.model.attention import rope_cache
    cos, sin = rope_cache(8, 5)
    assert block(x, cos, sin).shape == x.shape
    assert not [n for n, _ in block.named_parameters() if n.endswith("bias")]


@pytest.mark.parametrize("changes", [{}, {"tie_embeddings": False},
                                     {"n_kv_heads": 4}, {"n_kv_heads": 1},
                                     {"ffn_hidden": 40}])
def test_parameter_counts_match_the_model(changes):
    config = tiny(**changes)
    model = GPT(config)
    counts = parameter_counts(config)
    assert counts["total"] == model.num_parameters()
    assert counts["total"] == sum(v for k, v in counts.items() if k != "total")
    layer = model.layers[0]
    assert counts["attention"] == config.n_layers * sum(
        p.numel() for p in layer.self_attn.parameters())
    assert counts["MLP"] == config.n_layers * sum(p.numel()
                                                  for p in layer.mlp.parameters())


def test_tied_embeddings_are_one_tensor_and_untied_are_two():
    tied, untied = GPT(tiny()), GPT(tiny(tie_embeddings=False))
    assert tied.lm_head.weight is tied.embed_tokens.weight
    assert untied.lm_head.weight is not untied.embed_tokens.weight
    assert untied.num_parameters() - tied.num_parameters() == 97 * 32


@pytest.mark.parametrize("changes", [{}, {"tie_embeddings": False},
                                     {"n_kv_heads": 1}])
def test_flops_per_token_equals_the_counted_matrix_products(changes):
    # Reference: torch's FlopCounterMode over one forward + backward pass. SDPA's math
    # backend makes attention countable as batched matmuls. Exact: both count matmuls.
    config = tiny(**changes)
    model = GPT(config)
    idx = tokens(config, B=2, T=config.context_len + 1)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(idx[:, :-1], targets=idx[:, 1:])[1].backward()
    per_token = counter.get_total_flops() / (2 * config.context_len)
    assert per_token == flops_per_token(config)["total"]
    assert flops_per_token(config)["6N"] == 6 * matmul_parameters(config)


@pytest.mark.parametrize("dtype,precision", [(torch.float32, "fp32"),
                                             (torch.bfloat16, "bf16")])
def test_training_memory_equals_what_adamw_holds(dtype, precision):
    model = GPT(tiny()).to(dtype)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    idx = tokens(model.config, T=9)
    model(idx[:, :-1], targets=idx[:, 1:])[1].backward()
    opt.step()
    params = list(model.parameters())
    state = [t for p in params for t in opt.state[p].values()
             if torch.is_tensor(t) and t.numel() == p.numel()]
    held = {"weights": params, "gradients": [p.grad for p in params],
            "AdamW states": state}
    formula = training_memory(model.num_parameters(), precision)
    for part, tensors in held.items():
        assert sum(t.numel() * t.element_size() for t in tensors) == formula[part]
    assert training_memory(10, "mixed")["total"] == 160  # 2 + 2 + 8 + 4 bytes


def test_chinchilla_tokens_are_twenty_per_parameter():
    assert chinchilla_tokens(7_000_000_000) == 140_000_000_000


def test_reference_shapes_have_their_published_sizes():
    llama7b = GPTConfig(vocab_size=32000, n_layers=32, n_heads=32, d_model=4096,
                        context_len=2048, ffn_hidden=11008, tie_embeddings=False)
    assert parameter_counts(llama7b)["total"] == 6_738_415_616  # HF's count
    tinyllama = GPTConfig(vocab_size=32000, n_layers=22, n_heads=32, n_kv_heads=4,
                          d_model=2048, context_len=2048, ffn_hidden=5632,
                          tie_embeddings=False)
    assert round(parameter_counts(tinyllama)["total"] / 1e8) == 11  # 1.1B


def test_residual_projections_are_scaled_by_depth():
    config = tiny(n_layers=8, d_model=128, n_heads=4, n_kv_heads=4)
    model = GPT(config)
    std = {name: p.std().item() for name, p in model.named_parameters()}
    expected = 0.02 / math.sqrt(2 * 8)
    for name, s in std.items():
        if name.endswith(("o_proj.weight", "down_proj.weight")):
            assert s == pytest.approx(expected, rel=0.1), name
        elif name.endswith("norm.weight"):
            assert s == 0
        else:
            assert s == pytest.approx(0.02, rel=0.1), name


def test_initial_loss_is_close_to_log_vocab_size():
    torch.manual_seed(0)
    config = tiny(vocab_size=512, d_model=64)
    idx = tokens(config, B=4, T=config.context_len + 1)
    _, loss = GPT(config)(idx[:, :-1], targets=idx[:, 1:])
    assert abs(loss.item() - math.log(512)) < 0.05 * math.log(512)


def test_loss_ignores_targets_of_minus_100():
    torch.manual_seed(0)
    model = GPT(tiny())
    idx = tokens(model.config, T=9)
    logits, _ = model(idx[:, :-1], targets=idx[:, 1:])
    masked = idx[:, 1:].clone()
    masked[:, :4] = -100
    _, part = model(idx[:, :-1], targets=masked)
    logp = torch.log_softmax(logits[:, 4:].float(), -1)
    expected = -logp.gather(-1, idx[:, 5:, None]).mean()
    torch.testing.assert_close(part, expected, atol=1e-6, rtol=1e-6)


def test_model_is_causal():
    torch.manual_seed(0)
    model = GPT(tiny())
    a = tokens(model.config, T=12)
    b = a.clone()
    b[:, 8:] = (b[:, 8:] + 1) % model.config.vocab_size  # change the future only
    with torch.no_grad():
        la, lb = model(a)[0], model(b)[0]
    torch.testing.assert_close(la[:, :8], lb[:, :8], atol=0, rtol=0)
    assert not torch.allclose(la[:, 8:], lb[:, 8:])


def test_cached_forward_in_pieces_matches_the_full_forward():
    # Reference: one forward pass over all 12 tokens. The same tokens fed as 5 + 1 + 6
    # with caches and start_pos must give the same logits (fp32 rounding: 1e-5).
    torch.manual_seed(0)
    model = GPT(tiny()).eval()
    idx = tokens(model.config, T=12)
    with torch.no_grad():
        full = model(idx)[0]
        caches = [ConcatCache() for _ in model.layers]
        pieces, start = [], 0
        for n in (5, 1, 6):
            pieces.append(model(idx[:, start:start + n], kv_caches=caches,
                                start_pos=start)[0])
            start += n
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=1e-5)


def test_sequences_longer_than_the_context_are_refused():
    model = GPT(tiny())
    with pytest.raises(ValueError, match="context_len=24"):
        model(tokens(model.config, T=25))
    with pytest.raises(ValueError, match="exceed"):
        model(tokens(model.config, T=4), start_pos=21)


def test_every_parameter_gets_a_gradient():
    model = GPT(tiny(tie_embeddings=False))
    idx = tokens(model.config, T=9)
    model(idx[:, :-1], targets=idx[:, 1:])[1].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_bfloat16_model_runs_and_returns_a_float32_loss():
    model = GPT(tiny()).to(torch.bfloat16)
    idx = tokens(model.config, T=9)
    logits, loss = model(idx[:, :-1], targets=idx[:, 1:])
    assert logits.dtype == torch.bfloat16 and loss.dtype == torch.float32
    assert torch.isfinite(loss)


def test_bad_shapes_are_refused_with_the_numbers():
    with pytest.raises(ValueError, match="n_heads=6"):
        GPTConfig(vocab_size=10, n_layers=1, n_heads=6, d_model=32, context_len=8)
    with pytest.raises(ValueError, match="n_kv_heads=3"):
        GPTConfig(vocab_size=10, n_layers=1, n_heads=4, n_kv_heads=3, d_model=32,
                  context_len=8)


@pytest.mark.parametrize("name", PROFILES)
def test_every_profile_has_a_valid_model(name):
    P = PROFILES[name]
    config = GPTConfig.from_profile(P.model, P.data.vocab_size)
    assert config.head_dim % 2 == 0
    assert parameter_counts(config)["total"] > 0


def test_profile_models_are_sized_as_intended():
    sizes = {name: parameter_counts(GPTConfig.from_profile(P.model, P.data.vocab_size))
             ["total"] for name, P in PROFILES.items()}
    assert sizes["smoke"] < 1e6 < sizes["cpu"] < 1e7  # a laptop trains it in minutes
    assert 1e8 < sizes["gpu"] < 1.5e8  # the 125M class


def test_bfloat16_autocast_forward_and_backward_run():
    # Chapter 04 trains under autocast: fp32 weights, bf16 matmuls, fp32 loss.
    model = GPT(tiny())
    idx = tokens(model.config, T=9)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, loss = model(idx[:, :-1], targets=idx[:, 1:])
    assert logits.dtype == torch.bfloat16 and loss.dtype == torch.float32
    loss.backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32
               for p in model.parameters())


def test_logits_to_keep_gives_the_last_positions_of_the_full_pass():
    # Generation asks for the last position only (nanoGPT, HF's logits_to_keep).
    # Reference: the same model's full pass; the same float32 products: 1e-6.
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=97, n_layers=2, n_heads=4, n_kv_heads=2,
                          d_model=32, context_len=16)).eval()
    idx = torch.randint(97, (3, 11))
    with torch.no_grad():
        full, _ = model(idx)
        last, _ = model(idx, logits_to_keep=1)
        two, _ = model(idx, logits_to_keep=2)
    assert last.shape == (3, 1, 97) and two.shape == (3, 2, 97)
    torch.testing.assert_close(last, full[:, -1:], atol=1e-6, rtol=0)
    torch.testing.assert_close(two, full[:, -2:], atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="logits_to_keep"):
        model(idx[:, :-1], targets=idx[:, 1:], logits_to_keep=1)
