"""Appendix C is generated from the package: these tests fail when what it prints would
be incomplete (a public function or class without a docstring, an `llmfs` command
without an executed example in the appendix)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from llm_from_scratch.book.apidoc import cli_commands, public_api, summary

APPENDIX = Path(__file__).resolve().parent.parent / "chapters" / "C_package.ipynb"


def test_every_public_function_and_class_of_the_package_has_a_docstring():
    api = public_api()
    assert "llm_from_scratch.model.gpt" in api and "llm_from_scratch.training.loop" in api
    missing = [f"{m}.{name}" for m, entries in api.items()
               for name, _, text in entries if text is None]
    assert not missing, f"public names without a docstring: {missing}"


def test_a_dataclass_signature_is_not_a_docstring():
    @dataclass
    class Plain:
        x: int

    @dataclass
    class Told:
        """Has one.

        More."""
        x: int

    assert Plain.__doc__.startswith("Plain(")  # what Python writes in
    assert summary(Plain) is None and summary(Told) == "Has one."


def test_every_cli_command_has_an_executed_example_in_appendix_c():
    cells = json.loads(APPENDIX.read_text())["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    shown = set(re.findall(r'^llmfs\("([a-z_-]+)"', code, re.M))
    commands = set(cli_commands())
    assert {"info", "train", "generate"} <= commands
    assert commands <= shown, f"no example in appendix C for {commands - shown}"
