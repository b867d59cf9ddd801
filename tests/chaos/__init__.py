"""The chaos suite: faults injected into a private deployment under load (issue 8).

`python -m tests.chaos` (or `make chaos`) runs every scenario several times and
writes docs/reliability.md; tests/test_chaos.py runs a short version of each
scenario inside `make test`. See docs/reliability.md for the method.
"""
