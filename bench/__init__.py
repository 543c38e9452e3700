"""Benchmarks of matridge._core against other Python Matrix decoders.

``python -m bench`` (or ``make bench``) runs them all and rewrites
``docs/benchmarks.md``. These are measurements, not tests: nothing here
asserts a timing.
"""
