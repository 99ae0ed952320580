"""Benchmarks and proofs run from the command line (`python bench/<name>.py`)."""
