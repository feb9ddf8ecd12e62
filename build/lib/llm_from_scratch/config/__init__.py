"""Configuration: the run profiles (how big every run is) and the runtime helpers
(artifacts folder, device, seeds). A leaf: it imports no other wing. May import:
nothing of ours.
"""
