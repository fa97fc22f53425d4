"""Held-out evaluation of the current policy."""
