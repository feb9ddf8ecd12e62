"""Evaluation (chapter 10): bits per byte, the lm-evaluation-harness model, the local
tasks, contamination and the report card. May import: every wing above except book.
"""
