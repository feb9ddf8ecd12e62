"""Data (chapter 01): TinyStories read and cleaned, near-duplicates removed, the byte-
level BPE tokenizer, token shards, and the batches the loop draws. May import:
config, io.
"""
