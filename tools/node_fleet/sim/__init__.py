"""Replay simulator: the same core, over a virtual cluster."""
