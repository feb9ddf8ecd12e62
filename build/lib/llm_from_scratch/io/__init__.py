"""I/O that teaches nothing about LLMs (appendix B): atomic storage, checkpoints in
safetensors, run folders and their identity, signals. May import: config.
"""
