"""Recipes: pretraining, the scaling sweep, SFT and DPO, each a run of the one loop from
a profile to an exported model. May import: every wing above except evaluation and
book.
"""
