"""Notebook hygiene: strip outputs, execution counts and editor metadata from chapters.

    python tools/nbclean.py chapters/*.ipynb      # clean in place
    python tools/nbclean.py --check chapters/*.ipynb

Chapter sources are committed without outputs: the book build executes them, and a
committed output could disagree with what the code does now.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import nbformat

# Metadata that editors and converters add and that means nothing to the book.
NOISE_KEYS = {"lines_to_next_cell", "execution", "ExecuteTime", "collapsed", "scrolled",
              "jupyter", "papermill", "vscode"}
NOTEBOOK_NOISE = {"jupytext", "papermill", "widgets", "vscode"}


def clean(nb: dict) -> dict:
    for cell in nb["cells"]:
        for key in NOISE_KEYS & cell.get("metadata", {}).keys():
            del cell["metadata"][key]
        if cell["cell_type"] == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    for key in NOTEBOOK_NOISE & nb["metadata"].keys():
        del nb["metadata"][key]
    nb["metadata"].setdefault("language_info", {"name": "python"})
    return nb


def dumps(nb: dict) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--check", action="store_true", help="report, change nothing")
    args = parser.parse_args(argv)
    dirty = []
    for path in args.notebooks:
        text = path.read_text(encoding="utf-8")
        node = nbformat.reads(text, as_version=4)
        nbformat.validator.normalize(node)
        nbformat.validate(node)
        new = dumps(clean(json.loads(nbformat.writes(node))))
        if new != text:
            dirty.append(path)
            if not args.check:
                path.write_text(new, encoding="utf-8")
    for path in dirty:
        print(f"{'not clean' if args.check else 'cleaned'}: {path}")
    return 1 if (args.check and dirty) else 0


if __name__ == "__main__":
    sys.exit(main())
