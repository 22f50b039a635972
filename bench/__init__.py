"""Benchmarks comparing Tether with peer durable-execution engines.

Run ``python -m bench.run --help``. Nothing in here is a test: every entry
point prints figures.
"""
