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


MAX_LINE = 88  # longer code lines wrap mid-token in the PDF


def problems(path: Path) -> list[str]:
    """Everything that breaks the rules for a committed chapter source."""
    text = path.read_text(encoding="utf-8")
    try:
        node = nbformat.reads(text, as_version=4)
        nbformat.validate(node)
    except Exception as exc:  # noqa: BLE001 - any failure to load is the finding
        return [f"{path.name}: not a valid notebook ({type(exc).__name__}: {exc})"]
    out = []
    code = [c for c in node.cells if c.cell_type == "code"]
    for i, cell in enumerate(code):
        if cell.get("outputs"):
            out.append(f"{path.name}: code cell {i} is committed with outputs")
        if cell.get("execution_count") is not None:
            out.append(f"{path.name}: code cell {i} is committed with an execution count")
        for n, line in enumerate(cell.source.splitlines(), 1):
            if len(line) > MAX_LINE:
                out.append(f"{path.name}: code cell {i} line {n} has {len(line)} "
                           f"characters (at most {MAX_LINE})")
    if not code or "parameters" not in code[0].metadata.get("tags", []):
        out.append(f"{path.name}: the first code cell must be tagged 'parameters'")
    elif 'profile = "auto"' not in code[0].source:
        out.append(f'{path.name}: the parameters cell must hold profile = "auto"')
    if dumps(clean(json.loads(text))) != text:
        out.append(f"{path.name}: not normalised: run python tools/nbclean.py {path}")
    return out


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
