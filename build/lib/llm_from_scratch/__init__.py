"""llm_from_scratch: the package that the book *LLM from Scratch* collects.

The package is in wings, one subpackage per stage of the pipeline, each importing only
the wings before it: ``config`` → ``io`` → ``data`` → ``model`` → ``training`` →
``parallel`` and ``inference`` → ``posttrain`` → ``recipes`` → ``evaluation``, with
``book`` (figures, claims, the API page) beside them and the command line in
``__main__``. Each module is generated from the chapter that teaches it (see the header
of each file); a few hand-written modules hold glue: ``config.profiles``,
``config.runtime``, ``book.figures`` and ``__main__``.
"""

__version__ = "0.1.0"

# The wings in the pipeline's order, in tiers: a module may import from its own wing
# and from the tiers before it, never from a later tier or a neighbour in its own
# (tests/test_layout.py holds the package to it; appendix B draws it).
WINGS = (("config",), ("io",), ("data",), ("model",), ("training",),
         ("parallel", "inference"), ("posttrain",), ("recipes",), ("evaluation",),
         ("__main__",), ("book",))
