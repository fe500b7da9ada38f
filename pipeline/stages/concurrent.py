"""``ConcurrentDoFn``: many elements in flight per worker, results emitted as they finish.

Teacher calls and sandbox runs are mostly waiting (on a socket, on a child process), so one
worker keeps several going on a thread pool. ``process()`` submits the element and emits
whatever has finished (a sliding window: one slow element never idles the others);
``finish_bundle()`` drains the rest. Beam's metrics are thread-local, so counters are updated
in ``on_result``, which runs on the DoFn's own thread. Outputs from ``finish_bundle`` are in
the global window: these stages run in batch pipelines.
"""

from __future__ import annotations

import os
import queue
from concurrent.futures import ThreadPoolExecutor

import apache_beam as beam

from pipeline.records import KEPT, global_window_value


class ConcurrentDoFn(beam.DoFn):
    """Runs ``work(element) -> [(tag, value), ...]`` on ``concurrency`` threads (0 = CPUs).

    ``work`` must not raise for a bad element (route it to an errors tag instead); an exception
    it does raise fails the bundle, which is how fatal errors abort a run. ``on_result(tag,
    value)`` returns what is emitted on ``tag`` (``KEPT`` is the main output).
    """

    def __init__(self, concurrency: int):
        self._concurrency = concurrency

    def setup(self):
        self.threads = self._concurrency or os.cpu_count() or 1
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix=type(self).__name__)
        self._max_pending = 2 * self.threads  # keeps every thread busy without queuing a bundle
        self.start_bundle()

    def teardown(self):
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def start_bundle(self):
        # Finished futures arrive on a queue (a done-callback), so taking the next result
        # costs the same however many are in flight; a fresh queue per bundle keeps a failed
        # bundle's stragglers out of the next one.
        self._finished = queue.SimpleQueue()
        self.pending = 0

    def work(self, element) -> list[tuple[str, object]]:
        raise NotImplementedError

    def on_result(self, tag: str, value):
        return value

    def _emit(self, future, windowed: bool):
        self.pending -= 1
        for tag, value in future.result():
            out = self.on_result(tag, value)
            out = global_window_value(out) if windowed else out
            yield out if tag == KEPT else beam.pvalue.TaggedOutput(tag, out)

    def process(self, element):
        self._pool.submit(self.work, element).add_done_callback(self._finished.put)
        self.pending += 1
        if self.pending > self._max_pending:
            yield from self._emit(self._finished.get(), windowed=False)
        while not self._finished.empty():
            yield from self._emit(self._finished.get(), windowed=False)

    def finish_bundle(self):
        while self.pending:
            yield from self._emit(self._finished.get(), windowed=True)
