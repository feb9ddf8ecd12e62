"""The command line reports the run configuration and rejects bad input clearly."""

from __future__ import annotations

import subprocess
import sys


def llmfs(*args: str, **env) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "llm_from_scratch", *args],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})


def test_info_reports_profile_and_data(data_dir):
    out = llmfs("info", "--profile", "smoke", LLMFS_DATA=str(data_dir))
    assert out.returncode == 0, out.stderr
    assert "profile:   smoke" in out.stdout and str(data_dir) in out.stdout


def test_unknown_profile_is_a_one_line_error():
    out = llmfs("info", "--profile", "huge")
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "unknown profile" in out.stderr
