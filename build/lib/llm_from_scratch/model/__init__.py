"""The model (chapters 02-03): attention and its kernels, the GPT/Llama model, and
Hugging Face Llama import and export. May import: config, io, data.
"""
