"""The benchmark suite: `python -m bench` (see docs/performance.md).

Every figure is a ratio against an anchor measured in the same run on the same machine:
the wire time, a bare library loop doing the same job, or a bare script. Nothing here is a
test; `tests/test_bench_smoke.py` runs the suite with tiny bounds and checks only the shape
of `bench/results.json`.
"""
