"""Kernels: attention computed tile by tile, in PyTorch and in Triton (chapter 02)."""
