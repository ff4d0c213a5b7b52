"""Flux CD awareness: hold scale-down while a reconcile or rollout is under way."""
