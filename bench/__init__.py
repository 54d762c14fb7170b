"""Benchmarks: run as scripts (`python -m bench.<name>`), never collected by pytest."""
