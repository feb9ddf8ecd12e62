"""Parallelism (chapters 06-07): data parallel (DDP, ZeRO, FSDP, DeepSpeed), tensor and
pipeline parallel, and their launch. May import: config, io, data, model, training.
"""
