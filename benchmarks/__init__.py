"""Throughput, MFU and memory benchmarks of mlit (see run.py)."""
