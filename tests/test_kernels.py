"""Chapter 02: the Triton FlashAttention kernels, against PyTorch's SDPA.

Without CUDA the kernels run in Triton's interpreter on CPU tensors. The interpreter is
chosen when the kernels are *defined* (``@triton.jit`` reads TRITON_INTERPRET), so the
variable is set here, before the kernel module is imported; if some earlier test in the
same process imported the module without it, the module is reloaded.

Tolerances. Interpreted, the kernel computes in float32 (NumPy) and differs from SDPA
only in the order of its sums: measured 1e-7 to 1e-6 relative, so 1e-5 relative. On
CUDA the check runs in bfloat16 (8-bit mantissa; one rounding is up to 2^-9 = 0.2 %)
against a float32 SDPA, relative to the largest value: 2e-2.
"""

from __future__ import annotations

import importlib
import os
import sys

import pytest
import torch
import torch.nn.functional as F

CUDA = torch.cuda.is_available()
if not CUDA:
    os.environ["TRITON_INTERPRET"] = "1"
triton = pytest.importorskip("triton")  # an optional extra: `pip install .[kernels]`

if "llm_from_scratch.kernels.flash" in sys.modules and not CUDA:
    importlib.reload(sys.modules["llm_from_scratch.kernels.flash"])
from llm_from_scratch.kernels import flash  # noqa: E402


def rel_err(a, b):
    return ((a.float() - b.float()).abs().max() / b.float().abs().max()).item()


def run_against_sdpa(shape, causal, dtype, device, block):
    g = torch.Generator(device="cpu").manual_seed(sum(shape) + causal)
    base = [torch.randn(shape, generator=g).to(device) for _ in range(3)]
    grad = torch.randn(shape, generator=g).to(device)
    ours = [t.to(dtype, copy=True).requires_grad_() for t in base]
    ref = [t.clone().requires_grad_() for t in base]
    out = flash.flash_attention(*ours, causal=causal, block_m=block, block_n=block)
    out.backward(grad.to(dtype))
    expected = F.scaled_dot_product_attention(*ref, is_causal=causal)
    expected.backward(grad)
    grads = [rel_err(a.grad, b.grad) for a, b in zip(ours, ref)]
    return [rel_err(out, expected), *grads]


def test_kernels_are_interpreted_without_cuda():
    if CUDA:
        pytest.skip("CUDA present: the kernels are compiled, not interpreted")
    from triton.runtime.interpreter import InterpretedFunction

    assert isinstance(flash._flash_fwd, InterpretedFunction)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("T", [16, 40])  # one exact tile; a partial last tile
def test_triton_flash_forward_matches_sdpa_interpreted(causal, T):
    q, k, v = (torch.randn(2, 2, T, 16, generator=torch.Generator().manual_seed(i))
               for i in range(3))
    with torch.no_grad():
        out = flash.flash_attention(q, k, v, causal=causal, block_m=16, block_n=16)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    assert rel_err(out, ref) < 1e-5


@pytest.mark.parametrize("causal", [False, True])
def test_triton_flash_backward_matches_sdpa_interpreted(causal):
    errs = run_against_sdpa((1, 2, 40, 16), causal, torch.float32, "cpu", 16)
    assert max(errs) < 1e-5, errs  # O, dQ, dK, dV


def test_triton_flash_rejects_head_dims_tl_dot_cannot_tile():
    q = torch.randn(1, 1, 16, 24)
    with pytest.raises(ValueError, match="power of two"):
        flash.flash_attention(q, q, q)


@pytest.mark.skipif(not CUDA, reason="needs CUDA; the interpreted tests above cover "
                    "the same kernels on the CPU")
@pytest.mark.parametrize("causal", [False, True])
def test_triton_flash_matches_sdpa_bf16_cuda(causal):
    errs = run_against_sdpa((2, 4, 1000, 64), causal, torch.bfloat16, "cuda", 64)
    assert max(errs) < 2e-2, errs
