"""Benchmarks of the bridge: the harness (``python -m bench.run``) and the registry loader.

Nothing here is imported by the bridge; the harness drives it from the outside, as a worker
process on an embedded broker, next to pass-through baselines run the same way.
"""
