"""Precision: what `auto` chooses, the warning for emulated bf16, the MFU peak table."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest
import torch

from llm_from_scratch.training import precision
from llm_from_scratch.training.precision import (PEAK_FLOPS, choose_precision,
                                                 cpu_native_bf16, resolve_precision)


def test_auto_on_this_cpu_follows_its_bf16_instructions():
    caps = torch.cpu.get_capabilities()
    native = bool(caps.get("amx_bf16") or caps.get("avx512_bf16"))
    used, why = choose_precision("cpu")
    assert used == ("bf16" if native else "fp32") and why
    assert resolve_precision("auto", "cpu") == used


@pytest.fixture
def avx2_only_cpu(monkeypatch):
    """This CPU as one without AVX512-BF16 and AMX: torch reports no such extension."""
    caps = {k: v for k, v in torch.cpu.get_capabilities().items()
            if k not in ("amx_bf16", "avx512_bf16")}
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: caps)
    monkeypatch.setattr(precision, "_warned", set())


def test_auto_chooses_fp32_on_a_cpu_that_emulates_bf16(avx2_only_cpu):
    assert cpu_native_bf16()[0] is False
    used, why = choose_precision("cpu")
    assert used == "fp32" and "emulated" in why


def test_explicit_bf16_on_an_emulating_cpu_warns_once(avx2_only_cpu):
    with pytest.warns(UserWarning, match="emulated.*many times slower.*fp32"):
        assert resolve_precision("bf16", "cpu") == "bf16"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second warning would raise
        assert resolve_precision("bf16", "cpu") == "bf16"


def test_an_unknown_precision_names_the_choices():
    with pytest.raises(ValueError, match="fp32, bf16, fp16, auto"):
        resolve_precision("fp8", "cpu")


def test_the_peak_table_lists_a_gpu_only_where_its_peak_applies():
    assert "V100" in PEAK_FLOPS["fp16"] and "T4" in PEAK_FLOPS["fp16"]
    assert "V100" not in PEAK_FLOPS["bf16"] and "T4" not in PEAK_FLOPS["bf16"]
    assert "fp32" not in PEAK_FLOPS  # tensor-core peaks are not fp32's
    assert precision.peak_flops("cpu", "bf16") is None


def test_llmfs_info_prints_the_precision_and_why():
    out = subprocess.run([sys.executable, "-m", "llm_from_scratch", "info",
                          "--profile", "cpu"], capture_output=True, text=True,
                         check=True).stdout
    used, why = choose_precision("cpu")
    assert f"precision: {used} (auto: {why})" in out
