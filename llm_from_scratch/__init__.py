"""llm_from_scratch: the package that the book *LLM from Scratch* collects.

Each module is generated from the chapter that teaches it (see the header of each
file); a few hand-written modules hold glue: `profiles`, `utils`, `figures` and the
command line in `__main__`.
"""

__version__ = "0.1.0"
