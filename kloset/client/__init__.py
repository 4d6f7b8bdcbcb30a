"""kloset.v1 from a program's side: stubs addressed by the settings, photo submission, waiting on jobs, progress.

The command line (kloset/cli) and the benchmarks (kloset/bench) both stand on it, so a benchmark runs the code a
user runs without importing the command line.
"""
