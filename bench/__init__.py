"""Benchmarks and load generators (see bench/README.md); not part of the test suite."""
