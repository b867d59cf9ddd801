"""Helpers for the bench scripts (kept out of bench/*.py, which `make bench` runs)."""
