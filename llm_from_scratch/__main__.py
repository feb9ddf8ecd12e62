"""The `llmfs` command (also `python -m llm_from_scratch`): hand-written glue.

Each subcommand is a thin layer over the package; chapters add the real work
(training, generation) and this file only wires it to the command line.
"""

from __future__ import annotations

import argparse
import platform
import sys

import torch

from llm_from_scratch import __version__
from llm_from_scratch.data import DataNotFoundError, local_data_dir
from llm_from_scratch.profiles import PROFILE_NAMES, UnknownProfileError, get_profile
from llm_from_scratch.utils import artifacts_dir, pick_device


def cmd_info(args: argparse.Namespace) -> int:
    """Say what a run would use: profile, device, data and artifacts."""
    profile = get_profile(args.profile)
    try:
        data = str(local_data_dir() or "the Hugging Face hub (roneneldan/TinyStories)")
    except DataNotFoundError as exc:
        data = f"ERROR: {exc}"
    print(f"llm_from_scratch {__version__} (torch {torch.__version__}, "
          f"Python {platform.python_version()})")
    print(f"profile:   {profile.name} ({profile.summary})")
    print(f"device:    {pick_device()}")
    print(f"data:      {data}")
    print(f"artifacts: {artifacts_dir(profile.name)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmfs", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help=cmd_info.__doc__)
    info.add_argument("--profile", default="auto", help=", ".join(PROFILE_NAMES))
    info.set_defaults(func=cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (UnknownProfileError, DataNotFoundError) as exc:
        print(f"llmfs: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
