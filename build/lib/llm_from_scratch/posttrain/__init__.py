"""Post-training data (chapters 08-09): verifiable instructions and their checkers, the
chat format. May import: config, io, data, model, training, inference.
"""
