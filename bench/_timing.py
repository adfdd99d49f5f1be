"""Timing shared by the benchmarks (not a benchmark itself: `run_all.py` runs `bench_*.py`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """The fastest of ``repeat`` runs of ``fn()`` in wall seconds, and its last result.

    The best run, not the mean: on a shared machine the slower runs measure the neighbours.
    """
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result
