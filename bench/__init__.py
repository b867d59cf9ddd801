"""Benchmarks: run with `make bench` (see docs/benchmarks.md)."""
