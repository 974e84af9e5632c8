"""Benchmarks, run by ``make bench`` (``python -m bench [name ...]``). Figures are printed and
merged into bench/results/latest.json; nothing here asserts, so a slow machine never fails a test."""
