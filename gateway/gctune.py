"""The garbage collector's setting for a serving process.

After start-up ~140k long-lived objects (config, routes, SQLAlchemy and pydantic internals,
imported modules) sit in the collector's generations, and every full collection walks them
all: 50-60 ms each, about twice a second under load, which was the gateway's p99 and 14-17% of
its core (DESIGN.md). `gc.freeze()` moves them out of the collector's sight (they are never
garbage), and a higher gen-0 threshold runs the young collection less often: a request's own
objects die by reference counting, so cycles are rare. Only `gateway serve` does this (it
owns the process); apps built by tests leave the interpreter's collector as it is.
"""

from __future__ import annotations

import gc

# Allocations net of frees before a young collection (CPython's default: 700).
GEN0_THRESHOLD = 7000


def freeze_after_startup() -> None:
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
