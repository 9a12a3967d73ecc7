"""Percentiles and summaries of timing samples (pure)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """The q-quantile by linear interpolation between closest ranks (numpy's default)."""
    if not sorted_values:
        raise ValueError("no samples")
    pos = (len(sorted_values) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p99/mean/max in milliseconds of durations given in seconds."""
    values = sorted(seconds)
    return {"p50_ms": round(quantile(values, 0.50) * 1000, 3), "p99_ms": round(quantile(values, 0.99) * 1000, 3),
            "mean_ms": round(sum(values) / len(values) * 1000, 3), "max_ms": round(values[-1] * 1000, 3),
            "n": len(values)}
