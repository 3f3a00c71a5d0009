"""Benchmarks: measured on the real control plane, reported in bench/RESULTS.md, never asserted."""
