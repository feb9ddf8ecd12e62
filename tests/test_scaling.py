"""Compute budgets and the scaling sweep of chapter 04."""

from __future__ import annotations

import math

import numpy as np
import pytest

from llm_from_scratch.model.gpt import GPT, matmul_parameters
from llm_from_scratch.recipes.scaling import (compute_optimal, fit_power_law,
                                              loss_frontier, sweep_config, sweep_run,
                                              training_flops)


pytestmark = pytest.mark.usefixtures("one_thread")


def test_compute_optimal_spends_the_budget_at_twenty_tokens_per_parameter():
    n, d = compute_optimal(5.76e23)  # Chinchilla's own budget
    assert training_flops(n, d) == pytest.approx(5.76e23)
    assert d / n == pytest.approx(20.0)
    # Hoffmann et al. trained Chinchilla with 70B parameters on 1.4T tokens.
    assert n == pytest.approx(70e9, rel=0.03) and d == pytest.approx(1.4e12, rel=0.03)


def test_power_law_fit_recovers_a_known_law():
    x = np.geomspace(1e9, 1e15, 7)
    a, b = fit_power_law(x, 3.0 * x ** -0.05)
    assert a == pytest.approx(3.0, rel=1e-9) and b == pytest.approx(-0.05, rel=1e-9)


def test_frontier_is_the_lowest_curve_where_runs_overlap():
    runs = [{"curve": [(1e9, 5.0), (1e10, 4.0), (1e11, 3.5)]},  # small: fast, flat
            {"curve": [(1e9, 6.0), (1e10, 4.2), (1e11, 3.0)]}]  # large: slow, best
    grid, best = loss_frontier(runs, points=3)
    assert grid[0] == pytest.approx(1e9) and grid[-1] == pytest.approx(1e11)
    assert best.tolist() == pytest.approx([5.0, 4.0, 3.0])


def test_sweep_models_have_the_width_asked_for():
    for d in (16, 32, 96):
        c = sweep_config(d, 2, 512, 32)
        assert c.d_model == d and c.head_dim * c.n_heads == d
        assert sum(p.numel() for p in GPT(c).parameters()) > matmul_parameters(c) / 2


def test_sweep_run_spends_its_budget_and_is_cached(tmp_path, monkeypatch, data_dir):
    monkeypatch.setenv("LLMFS_HOME", str(tmp_path))
    first = sweep_run("smoke", 16, data_path=data_dir)
    from llm_from_scratch.config.profiles import get_profile

    budget = get_profile("smoke").train.sweep_flops
    spent = training_flops(first["params"], first["tokens"])
    tokens_per_step = get_profile("smoke").train.sweep_batch * 32
    assert abs(spent - budget) <= 6 * first["params"] * tokens_per_step  # one step
    assert first["curve"][-1][0] == pytest.approx(spent)
    assert all(math.isfinite(loss) for _, loss in first["curve"])
    again = sweep_run("smoke", 16, data_path=data_dir)  # from its checkpoint
    assert again["curve"] == first["curve"]
    assert again["reused"] and not first["reused"]
