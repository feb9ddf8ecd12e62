"""Count how often a profile name is resolved on the way through `llmfs` commands.

    python tools/profile_probe.py            # train, sft and dpo on the smoke profile

Each value should be resolved once, at the top, and passed down as an object (issue
28): this probe wraps ``config.profiles.resolve_profile_name`` and
``config.profiles.get_profile``, runs each command in this process with a few steps in
a scratch artifacts folder, and prints how many times each was called with a name
(a ``Profile`` passed through does not count as a resolution).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llm_from_scratch import __main__ as cli  # noqa: E402
from llm_from_scratch.config import profiles  # noqa: E402

COMMANDS = {
    "train": ["train", "--profile", "smoke", "--max-steps", "2"],
    "sft": ["sft", "--profile", "smoke"],  # a model whose replies fit a DPO pair
    "dpo": ["dpo", "--profile", "smoke", "--max-steps", "2",
            "--max-new-tokens", "20"],  # replies short enough to pair
}


def probe(argv: list[str]) -> dict[str, int]:
    """{function: calls with a profile name} while ``llmfs argv`` runs."""
    counts = {"resolve_profile_name": 0, "get_profile": 0}
    real_resolve, real_get = profiles.resolve_profile_name, profiles.get_profile

    def resolve(name="auto"):
        counts["resolve_profile_name"] += 1
        return real_resolve(name)

    def get(name="auto", **sections):
        if not isinstance(name, profiles.Profile):
            counts["get_profile"] += 1
        return real_get(name, **sections)

    patches = [mock.patch.object(profiles, "resolve_profile_name", resolve)]
    # every module that imported get_profile holds its own reference to it
    for module in list(sys.modules.values()):
        if getattr(module, "get_profile", None) is real_get:
            patches.append(mock.patch.object(module, "get_profile", get))
    with contextlib.ExitStack() as stack:
        for p in patches:
            stack.enter_context(p)
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            status = cli.main(argv)
    if status != 0:
        raise SystemExit(f"llmfs {' '.join(argv)} failed ({status}):\n{out.getvalue()}")
    return counts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("commands", nargs="*", default=list(COMMANDS),
                    help=f"some of {', '.join(COMMANDS)} (default: all)")
    args = ap.parse_args(argv)
    unknown = [c for c in args.commands if c not in COMMANDS]
    if unknown:
        ap.error(f"unknown command {unknown[0]!r}: choose from {', '.join(COMMANDS)}")
    os.environ.setdefault("LLMFS_HOME", tempfile.mkdtemp(prefix="llmfs-probe-"))
    for name in args.commands:
        counts = probe(COMMANDS[name])
        print(f"llmfs {name}: get_profile with a name {counts['get_profile']} times, "
              f"resolve_profile_name {counts['resolve_profile_name']} times")
    return 0


if __name__ == "__main__":
    sys.exit(main())
