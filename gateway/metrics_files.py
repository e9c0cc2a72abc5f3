"""Prometheus multiprocess values that reach their files once a second, not on every change.

With `gateway serve --workers N` prometheus-client keeps every value in a per-process mmapped
file so that `/metrics` can merge the workers. Its value class writes the file on every
`inc()`/`observe()`, behind a lock and a getpid() syscall: ~15 writes a request, about a tenth
of a request's CPU (bench/RESULTS-workers.md). Here a value changes in memory only, and one
daemon thread per process writes every value to the file each `interval` seconds (a few
hundred values: well under a millisecond); a scrape writes its own process's values first, so
it sees them exact and the other workers' at most `interval` old; exit writes them once more.
A source (`add_source`: GatewayMetrics, which counts in plain Python) writes its totals into
the values first, under the same lock, so each write has every call counted before it.

prometheus-client picks its value class process-wide (`prometheus_client.values.ValueClass`,
read whenever a metric or a labelled child is created), so this is installed once per process
before the gateway's metrics exist; workers are spawned, not forked, so no value or thread is
inherited.
"""

from __future__ import annotations

import atexit
import threading
import weakref
from collections.abc import Callable
from typing import Any

from prometheus_client import values

_INTERVAL = 1.0


class MetricFiles:
    """The buffered value class of this process and the thread that writes it out."""

    def __init__(self, interval: float = _INTERVAL) -> None:
        self.interval = interval
        self._lock = threading.Lock()  # file writes and value creation (mmap may grow)
        self._values: list[Any] = []
        self._sources: list[weakref.WeakMethod[Callable[[], None]]] = []
        self.value_class = self._make_value_class()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="metric-files", daemon=True)

    def _make_value_class(self) -> type:
        base: Any = values.MultiProcessValue()  # type: ignore[no-untyped-call,unused-ignore]
        lock, created = self._lock, self._values

        class BufferedValue(base):  # type: ignore[misc]
            """prometheus-client's mmapped value, written by MetricFiles.flush()."""

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                with lock:
                    super().__init__(*args, **kwargs)
                    created.append(self)

            def inc(self, amount: float) -> None:
                self._value += amount
                self._timestamp = 0.0

            def set(self, value: float, timestamp: float | None = None) -> None:
                self._value = value
                self._timestamp = timestamp or 0.0

            def get(self) -> float:
                return float(self._value)

        return BufferedValue

    def start(self) -> None:
        self._thread.start()
        atexit.register(self.close)

    def add_source(self, apply: Callable[[], None]) -> None:
        """`apply` (a bound method, held weakly) sets values; each flush calls it first."""
        with self._lock:
            self._sources.append(weakref.WeakMethod(apply))

    def flush(self) -> None:
        """Write every value of this process to its file, the sources' totals applied."""
        with self._lock:
            for source in tuple(self._sources):
                apply = source()
                if apply is None:
                    self._sources.remove(source)
                else:
                    apply()
            for value in self._values:
                value._file.write_value(value._key, value._value, value._timestamp)

    def close(self) -> None:
        self._stop.set()
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()


def install() -> MetricFiles:
    """This process's MetricFiles, installed as prometheus-client's value class on first use."""
    current: Any = values.ValueClass
    files = getattr(current, "metric_files", None)
    if isinstance(files, MetricFiles):
        return files
    files = MetricFiles()
    files.value_class.metric_files = files  # type: ignore[attr-defined]
    values.ValueClass = files.value_class
    files.start()
    return files
