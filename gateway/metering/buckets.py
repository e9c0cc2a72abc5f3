"""Latency histogram buckets shared by the rollup writer and the reports that read it.

Percentiles over months of raw rows are too slow to compute per page load, so each hour keeps a
count per log-scale bucket (`usage_latency_hourly`) and reports read percentiles from the
cumulative counts. Bucket 0 holds everything under 1 ms; bucket i >= 1 holds [R**(i-1), R**i)
ms with R = 1.25 (about +-12% resolution); the last bucket is open-ended (over ~35 minutes).
"""

from __future__ import annotations

import math

RATIO = 1.25
COUNT = 72  # R**71 ms ~ 7.7e6 ms: the last bucket is everything above ~2 hours
_LOG_RATIO = math.log(RATIO)


def bucket_of(ms: float) -> int:
    """The bucket that holds a latency of `ms` milliseconds."""
    if not ms >= 1.0:  # also catches NaN
        return 0
    return min(COUNT - 1, int(math.log(ms) / _LOG_RATIO) + 1)


def upper_ms(bucket: int) -> float:
    """The (exclusive) upper edge of a bucket in ms; reports show a percentile as this edge."""
    return RATIO**bucket


def percentile(counts: dict[int, int], q: float) -> float | None:
    """The upper edge of the bucket holding the q-quantile (0 < q <= 1), or None when empty."""
    total = sum(counts.values())
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for bucket in sorted(counts):
        seen += counts[bucket]
        if seen >= rank:
            return upper_ms(bucket)
    return upper_ms(max(counts))
