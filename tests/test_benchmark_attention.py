"""benchmarks/attention.py runs end to end on the CPU and reports ratios to SDPA."""

from __future__ import annotations

import json

from support import load_benchmark


def test_attention_benchmark_reports_every_length_relative_to_sdpa(tmp_path, capsys):
    bench = load_benchmark("attention")
    out = tmp_path / "attention.json"
    assert bench.main(["--device", "cpu", "--seq-lens", "32", "64", "--heads", "2",
                       "--head-dim", "16", "--tile", "16", "--repeats", "1",
                       "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert {(r["T"], r["impl"]) for r in rows} == {
        (T, impl) for T in (32, 64) for impl in ("SDPA", "naive", "tiled")}
    for r in rows:
        assert r["fwd_ms"] > 0
        if r["impl"] == "SDPA":
            assert r["fwd_ratio"] == 1.0 and r["fwd_bwd_ratio"] == 1.0
        if r["impl"] == "naive":
            assert r["fwd_bwd_ms"] > 0
    assert "fwd+bwd" in capsys.readouterr().out
