"""Our GPT and Hugging Face's LlamaForCausalLM (Qwen3ForCausalLM with appendix A's
QK-layernorm): the same function, lossless on disk."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import transformers
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast, Qwen3ForCausalLM

from llm_from_scratch.model.hf import (CheckpointError, config_from_hf,
                                       hf_config, load_hf, save_hf, to_hf_state_dict)
from llm_from_scratch.model.gpt import GPT, GPTConfig

transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()

TINY = GPTConfig(vocab_size=113, n_layers=2, n_heads=4, n_kv_heads=4, d_model=32,
                 context_len=20)


def model(seed: int = 0, qk_norm: bool = False, **changes) -> GPT:
    torch.manual_seed(seed)
    m = GPT(dataclasses.replace(TINY, qk_norm=qk_norm, **changes))
    with torch.no_grad():  # random norm scales too, so that a swapped norm shows up
        for name, p in m.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
    return m.eval()


def tokens(T: int = 20, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(TINY.vocab_size, (3, T), generator=g)


@pytest.mark.parametrize("n_kv_heads", [4, 2, 1], ids=["mha", "gqa", "mqa"])
@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
def test_model_matches_hf_llama_logits(tmp_path, n_kv_heads, tie):
    # Reference: transformers.LlamaForCausalLM loaded by from_pretrained from our
    # export, fp32, random weights. Tolerance 1e-5 absolute on logits of order 1: both
    # run the same float32 operations (observed differences are 0 to a few 1e-7, from
    # summation order); a wiring error (head layout, RoPE pairing, a swapped norm)
    # shows up at 1e-2 or more.
    ours = model(n_kv_heads=n_kv_heads, tie_embeddings=tie)
    save_hf(ours, tmp_path)
    hf = LlamaForCausalLM.from_pretrained(tmp_path).eval()
    assert hf.config.tie_word_embeddings == tie
    assert hf.config.num_key_value_heads == n_kv_heads
    idx = tokens()
    with torch.no_grad():
        logits, loss = ours(idx[:, :-1], targets=idx[:, 1:])
        out = hf(input_ids=idx, labels=idx)
    torch.testing.assert_close(logits, out.logits[:, :-1], atol=1e-5, rtol=0)
    torch.testing.assert_close(loss, out.loss, atol=1e-5, rtol=0)  # same shifted loss


@pytest.mark.parametrize(("n_kv_heads", "tie"), [(2, True), (4, False)],
                         ids=["gqa-tied", "mha-untied"])
def test_a_qk_normed_model_matches_hf_qwen3_logits(tmp_path, n_kv_heads, tie):
    # Reference: transformers.Qwen3ForCausalLM loaded by from_pretrained from our
    # export, fp32, random weights and q/k gains, eps 1e-6 (not Qwen3's default, so
    # that the eps is seen to travel). Tolerance 1e-5 absolute, as for Llama: the
    # same float32 operations (observed: 0); a norm after RoPE instead of before it,
    # over the whole projection instead of per head, or missing, is off by 1e-2+.
    ours = model(qk_norm=True, n_kv_heads=n_kv_heads, tie_embeddings=tie,
                 norm_eps=1e-6)
    save_hf(ours, tmp_path)
    written = json.loads((tmp_path / "config.json").read_text())
    assert (written["model_type"], written["architectures"]) == (
        "qwen3", ["Qwen3ForCausalLM"])
    hf = Qwen3ForCausalLM.from_pretrained(tmp_path).eval()
    attn = hf.model.layers[1].self_attn
    assert attn.q_norm.variance_epsilon == 1e-6 and hf.config.layer_types == [
        "full_attention"] * 2
    assert torch.equal(attn.k_norm.weight, ours.layers[1].self_attn.k_norm.weight)
    idx = tokens()
    with torch.no_grad():
        logits, loss = ours(idx[:, :-1], targets=idx[:, 1:])
        out = hf(input_ids=idx, labels=idx)
    torch.testing.assert_close(logits, out.logits[:, :-1], atol=1e-5, rtol=0)
    torch.testing.assert_close(loss, out.loss, atol=1e-5, rtol=0)
    back = load_hf(tmp_path)  # with its QK-layernorm again, bit for bit
    assert back.config.qk_norm and back.layers[0].self_attn.q_norm.eps == 1e-6
    with torch.no_grad():
        assert torch.equal(back(idx)[0], ours(idx)[0])
    assert not load_hf(save_hf(model(), tmp_path / "plain")).config.qk_norm


def test_load_hf_reads_a_qwen3_checkpoint_written_by_transformers(tmp_path):
    # Reference: HF's own save_pretrained of a Qwen3ForCausalLM, random weights
    # (its q/k gains start at 1: randomised so that a dropped norm would show).
    from transformers import Qwen3Config

    config = Qwen3Config(vocab_size=113, hidden_size=32, intermediate_size=72,
                         num_hidden_layers=2, num_attention_heads=4, head_dim=8,
                         num_key_value_heads=2, max_position_embeddings=20,
                         tie_word_embeddings=False)
    torch.manual_seed(0)
    hf = Qwen3ForCausalLM(config).eval()
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
    hf.save_pretrained(tmp_path)
    ours = load_hf(tmp_path)
    assert ours.config.qk_norm and ours.config.norm_eps == config.rms_norm_eps
    with torch.no_grad():
        torch.testing.assert_close(ours(tokens())[0], hf(tokens()).logits,
                                   atol=1e-5, rtol=0)


def test_roundtrip_through_the_hf_layout_is_lossless(tmp_path):
    for i, (tie, dtype) in enumerate([(True, torch.float32), (False, torch.bfloat16)]):
        ours = model(tie_embeddings=tie, n_kv_heads=2).to(dtype)
        back = load_hf(save_hf(ours, tmp_path / str(i)))
        assert back.config == ours.config
        assert back.lm_head.weight.dtype == dtype
        assert (back.lm_head.weight is back.embed_tokens.weight) == tie
        a, b = ours.state_dict(), back.state_dict()
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), key  # bit for bit
        with torch.no_grad():
            assert torch.equal(ours(tokens())[0], back(tokens())[0])


def test_load_hf_reads_a_checkpoint_written_by_transformers(tmp_path):
    # Reference: HF's own save_pretrained of a LlamaForCausalLM with random weights;
    # our model loaded from it must give HF's logits (same 1e-5 as above).
    from transformers import LlamaConfig

    config = LlamaConfig(vocab_size=113, hidden_size=32, intermediate_size=72,
                         num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, max_position_embeddings=20,
                         rms_norm_eps=1e-6, rope_theta=500.0,
                         tie_word_embeddings=False)
    torch.manual_seed(0)
    hf = LlamaForCausalLM(config).eval()
    hf.save_pretrained(tmp_path)
    ours = load_hf(tmp_path)
    assert ours.config.ffn_hidden == 72 and ours.config.rope_theta == 500.0
    with torch.no_grad():
        torch.testing.assert_close(ours(tokens())[0], hf(tokens()).logits,
                                   atol=1e-5, rtol=0)


def test_exported_tokenizer_loads_in_transformers(tmp_path, valid_stories):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(valid_stories[:200], trainers.BpeTrainer(
        vocab_size=300, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.add_special_tokens(["<|endoftext|>"])
    ours = model(vocab_size=tok.get_vocab_size())
    save_hf(ours, tmp_path, tok)
    hf_tok = PreTrainedTokenizerFast.from_pretrained(tmp_path)
    text = valid_stories[300]
    assert hf_tok(text).input_ids == tok.encode(text).ids
    assert hf_tok.eos_token == "<|endoftext|>"
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["eos_token_id"] == tok.token_to_id("<|endoftext|>")


def test_truncated_weights_are_refused_naming_the_file(tmp_path):
    save_hf(model(), tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:500])
    with pytest.raises(CheckpointError, match="model.safetensors: not a readable "
                                              "safetensors file"):
        load_hf(tmp_path)


def test_missing_weights_file_is_refused(tmp_path):
    save_hf(model(), tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        load_hf(tmp_path)


def test_a_shape_that_disagrees_with_the_config_names_the_tensor(tmp_path):
    save_hf(model(), tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["intermediate_size"] += 64
    (tmp_path / "config.json").write_text(json.dumps(config))
    expected = (r"model\.layers\.0\.mlp\.gate_proj\.weight has shape \(128, 32\), "
                r"config.json implies \(192, 32\)")
    with pytest.raises(CheckpointError, match=expected):
        load_hf(tmp_path)


def test_missing_and_unexpected_tensors_are_named(tmp_path):
    from safetensors.torch import save_file

    state = to_hf_state_dict(model())
    state["model.layers.9.mlp.up_proj.weight"] = state.pop(
        "model.layers.1.mlp.up_proj.weight")
    save_hf(model(), tmp_path)
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"layers\.1\.mlp\.up_proj.*layers\.9"):
        load_hf(tmp_path)


@pytest.mark.parametrize("change,message", [
    ({"model_type": "mistral"}, "model_type"),
    ({"attention_bias": True}, "attention_bias"),
    ({"rope_scaling": {"rope_type": "linear", "factor": 2.0}}, "rope_scaling"),
    ({"hidden_act": "gelu"}, "hidden_act"),
    ({"head_dim": 4}, "head_dim"),
    ({"model_type": "qwen3", "use_sliding_window": True}, "use_sliding_window"),
])
def test_unsupported_llama_variants_are_refused(change, message):
    config = {**hf_config(TINY), **change}
    with pytest.raises(CheckpointError, match=message):
        config_from_hf(config)


def test_config_json_is_what_transformers_reads(tmp_path):
    from transformers import AutoConfig

    c = dataclasses.replace(TINY, n_kv_heads=2, rope_theta=2500.0, norm_eps=1e-6)
    save_hf(GPT(c), tmp_path)
    hf = AutoConfig.from_pretrained(tmp_path)
    assert (hf.model_type, hf.hidden_size, hf.num_key_value_heads,
            hf.intermediate_size, hf.max_position_embeddings, hf.rms_norm_eps) == (
        "llama", 32, 2, c.ffn_hidden, 20, 1e-6)
    theta = getattr(hf, "rope_theta", None) or hf.rope_parameters["rope_theta"]
    assert theta == 2500.0
