"""Benchmarks: commands that measure kloset and print JSON figures."""
