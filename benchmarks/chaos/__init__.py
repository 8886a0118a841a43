"""Fault injection on a two-node deployment: the machinery `python -m benchmarks chaos` and
tests/integration/test_faults.py share (services, nodes, traffic, faults, the verdict)."""
