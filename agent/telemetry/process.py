"""The agent process itself, with the ``process.*`` semantic-convention names (psutil).

Callbacks run on the metric reader's thread at each collection, never on the call path.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import psutil
from opentelemetry.metrics import CallbackOptions, Meter, Observation

__all__ = ["ProcessMetrics"]


class ProcessMetrics:
    """CPU time and utilization, memory, open file descriptors and threads of this process."""

    def __init__(self, meter: Meter, process: psutil.Process | None = None) -> None:
        self._process = process or psutil.Process()
        self._cpus = len(self._process.cpu_affinity() or ()) or psutil.cpu_count() or 1
        times = self._process.cpu_times()
        self._last = (time.monotonic(), times.user + times.system)
        meter.create_observable_counter(
            "process.cpu.time",
            callbacks=[self._cpu_time],
            unit="s",
            description="Total CPU seconds broken down by different CPU modes.",
        )
        meter.create_observable_gauge(
            "process.cpu.utilization",
            callbacks=[self._cpu_utilization],
            unit="1",
            description="CPU time since the last collection over elapsed time and available CPUs.",
        )
        meter.create_observable_up_down_counter(
            "process.memory.usage",
            callbacks=[self._memory_usage],
            unit="By",
            description="The amount of physical memory in use.",
        )
        meter.create_observable_up_down_counter(
            "process.memory.virtual",
            callbacks=[self._memory_virtual],
            unit="By",
            description="The amount of committed virtual memory.",
        )
        meter.create_observable_up_down_counter(
            "process.unix.file_descriptor.count",
            callbacks=[self._fds],
            unit="{file_descriptor}",
            description="Number of unix file descriptors in use by the process.",
        )
        meter.create_observable_up_down_counter(
            "process.thread.count",
            callbacks=[self._threads],
            unit="{thread}",
            description="Process threads count.",
        )

    def _cpu_time(self, _options: CallbackOptions) -> Iterable[Observation]:
        times = self._process.cpu_times()
        yield Observation(times.user, {"cpu.mode": "user"})
        yield Observation(times.system, {"cpu.mode": "system"})

    def _cpu_utilization(self, _options: CallbackOptions) -> Iterable[Observation]:
        times = self._process.cpu_times()
        now, used = time.monotonic(), times.user + times.system
        last_at, last_used = self._last
        self._last = (now, used)
        elapsed = now - last_at
        if elapsed > 0:
            yield Observation(max(0.0, (used - last_used) / elapsed / self._cpus))

    def _memory_usage(self, _options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(self._process.memory_info().rss)

    def _memory_virtual(self, _options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(self._process.memory_info().vms)

    def _fds(self, _options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(self._process.num_fds())

    def _threads(self, _options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(self._process.num_threads())
