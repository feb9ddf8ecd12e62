"""benchmarks/generate.py runs on the CPU and checks its tokens against HF."""

from __future__ import annotations

import json

import pytest

from support import load_benchmark

pytestmark = pytest.mark.usefixtures("one_thread")


def test_generate_benchmark_reports_ratios_to_transformers(tmp_path, capsys):
    bench = load_benchmark("generate")
    out = tmp_path / "generate.json"
    assert bench.main(["--profile", "smoke", "--lengths", "8", "70",
                       "--prompt-len", "4", "--rounds", "1", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["tokens"] for r in rows] == [8, 70]  # 74 positions: past smoke's 64
    for r in rows:
        assert r["same_tokens"] is True
        assert r["ours_tok_s"] > 0 and r["hf_tok_s"] > 0 and r["uncached_tok_s"] > 0
        assert r["ratio"] == pytest.approx(r["ours_tok_s"] / r["hf_tok_s"])
    assert "transformers" in capsys.readouterr().out
