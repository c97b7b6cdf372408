"""Frozen models that only training and evaluation load (not needed for lip-sync inference)."""
