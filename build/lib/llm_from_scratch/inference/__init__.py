"""Inference (chapter 05): loading a trained model and generating from it with a KV
cache. May import: config, io, data, model, training.
"""
