"""Training (chapter 04, appendix A): the optimizer and its schedule, mixed precision,
the one training loop, metrics, memory and stability options. May import: config, io,
data, model.
"""
