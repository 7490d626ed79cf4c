"""Benchmarks: scripts that start the product, drive it and print figures (never tests)."""
