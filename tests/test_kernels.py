"""Chapter 02: the Triton FlashAttention kernels, against PyTorch's SDPA.

Without CUDA the kernels run in Triton's interpreter on CPU tensors. The interpreter
must be chosen (TRITON_INTERPRET=1) before Triton is first imported, because Triton's
own library functions are set up at that moment. This module sets the variable before
it imports Triton. If something earlier in the same pytest process already imported
Triton without it, the checks run in one fresh Python process instead (this file,
imported there first), and the tests assert on what that process measured.

Tolerances. Interpreted, the kernel computes in float32 (NumPy) and differs from SDPA
only in the order of its sums: measured 1e-7 to 1e-6 relative, so 1e-5 relative. On
CUDA the check runs in bfloat16 (8-bit mantissa; one rounding is up to 2^-9 = 0.2 %)
against a float32 SDPA, relative to the largest value: 2e-2.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

CUDA = torch.cuda.is_available()
IN_PROCESS = CUDA or "triton" not in sys.modules  # can this process interpret?
if not CUDA:
    os.environ["TRITON_INTERPRET"] = "1"
pytest.importorskip("triton")  # an optional extra: `pip install .[kernels]`

FP32_TOL, BF16_TOL = 1e-5, 2e-2  # relative; see the module docstring


def rel_err(a, b):
    return ((a.float() - b.float()).abs().max() / b.float().abs().max()).item()


def against_sdpa(shape, causal, dtype, device, block, backward):
    """Relative errors of O (and dQ, dK, dV) of flash_attention against SDPA."""
    from llm_from_scratch.model.kernels.flash import flash_attention

    g = torch.Generator().manual_seed(sum(shape) + causal)
    base = [torch.randn(shape, generator=g).to(device) for _ in range(3)]
    grad = torch.randn(shape, generator=g).to(device)
    ours = [t.to(dtype, copy=True).requires_grad_(backward) for t in base]
    ref = [t.clone().requires_grad_(backward) for t in base]
    out = flash_attention(*ours, causal=causal, block_m=block, block_n=block)
    expected = F.scaled_dot_product_attention(*ref, is_causal=causal)
    errs = [rel_err(out, expected)]
    if backward:
        out.backward(grad.to(dtype))
        expected.backward(grad)
        errs += [rel_err(a.grad, b.grad) for a, b in zip(ours, ref)]
    return errs


def kernel_is_interpreted():
    from triton.runtime.interpreter import InterpretedFunction

    from llm_from_scratch.model.kernels import flash

    return isinstance(flash._flash_fwd, InterpretedFunction)


# The interpreted checks: (name, causal, T, backward). T=16 is one exact tile, T=40
# leaves the last tile partial.
CPU_CASES = [(f"{'bwd' if bw else 'fwd'}-causal={c}-T={T}", c, T, bw)
             for c in (False, True) for T, bw in ((16, False), (40, False), (40, True))]


def run_cpu_cases() -> dict:
    results = {name: against_sdpa((2, 2, T, 16), c, torch.float32, "cpu", 16, bw)
               for name, c, T, bw in CPU_CASES}
    results["interpreted"] = kernel_is_interpreted()
    return results


@pytest.fixture(scope="module")
def cpu_results():
    if IN_PROCESS:
        return run_cpu_cases()
    code = ("import importlib.util, json, sys\n"
            f"spec = importlib.util.spec_from_file_location('k', {str(__file__)!r})\n"
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
            "print(json.dumps(m.run_cpu_cases()))\n")
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [root, *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(CUDA, reason="CUDA present: the kernels are compiled, not "
                    "interpreted; the bf16 CUDA tests below cover them")
def test_kernels_are_interpreted_without_cuda(cpu_results):
    assert cpu_results["interpreted"] is True


@pytest.mark.parametrize("name", [n for n, *_ in CPU_CASES if n.startswith("fwd")])
def test_triton_flash_forward_matches_sdpa_interpreted(name, cpu_results):
    # Reference: float32 SDPA; tolerance FP32_TOL (reordered float32 sums).
    assert max(cpu_results[name]) < FP32_TOL, cpu_results[name]


@pytest.mark.parametrize("name", [n for n, *_ in CPU_CASES if n.startswith("bwd")])
def test_triton_flash_backward_matches_sdpa_interpreted(name, cpu_results):
    # O, dQ, dK, dV against float32 SDPA's autograd; tolerance FP32_TOL.
    assert max(cpu_results[name]) < FP32_TOL, cpu_results[name]


def test_triton_flash_rejects_head_dims_tl_dot_cannot_tile():
    # The check comes before any launch, so it holds compiled or interpreted.
    from llm_from_scratch.model.kernels.flash import flash_attention

    q = torch.randn(1, 1, 16, 24)
    with pytest.raises(ValueError, match="power of two"):
        flash_attention(q, q, q)


@pytest.mark.skipif(not CUDA, reason="needs CUDA; the interpreted tests above cover "
                    "the same kernels on the CPU")
@pytest.mark.parametrize("causal", [False, True])
def test_triton_flash_matches_sdpa_bf16_cuda(causal):
    # Reference: float32 SDPA on the same inputs; tolerance BF16_TOL.
    errs = against_sdpa((2, 4, 1000, 64), causal, torch.bfloat16, "cuda", 64, True)
    assert max(errs) < BF16_TOL, errs
