"""ConcurrentDoFn: a sliding window of work in flight, every result emitted exactly once."""

import threading

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline.records import ERRORS, KEPT
from pipeline.stages.concurrent import ConcurrentDoFn


class _SlowFirst(ConcurrentDoFn):
    """Element 0 waits until every other element has finished (or gives up after 20 s).

    With a sliding window the others keep flowing past it; a batch-then-wait loop would stall
    on element 0's batch and element 0 would report that it was starved."""

    def __init__(self, threads, total):
        super().__init__(threads)
        self._total = total

    def setup(self):
        super().setup()
        self._others_done = threading.Semaphore(0)

    def work(self, element):
        if element == 0:
            starved = not all(self._others_done.acquire(timeout=20) for _ in range(self._total - 1))
            return [(KEPT, ("starved" if starved else "ok", 0))]
        self._others_done.release()
        return [(KEPT, ("ok", element))] if element % 5 else [(ERRORS, element)]


def _run_directly(fn, elements):
    fn.setup()
    fn.start_bundle()
    out = []
    for element in elements:
        out += fn.process(element)
        assert fn.pending <= 2 * fn.threads  # the window is bounded: a bundle is not queued
    out += fn.finish_bundle()
    assert fn.pending == 0
    fn.teardown()
    return out


def test_one_slow_element_does_not_idle_the_others():
    total = 40
    out = _run_directly(_SlowFirst(4, total), range(total))
    kept = [o for o in out if not isinstance(o, beam.pvalue.TaggedOutput)]
    kept = [o.value if hasattr(o, "value") else o for o in kept]
    errors = [o.value for o in out if isinstance(o, beam.pvalue.TaggedOutput)]
    assert ("ok", 0) in kept
    assert sorted(e for _, e in kept) == [e for e in range(total) if e % 5 or e == 0]
    assert sorted(errors) == [e for e in range(5, total, 5)]


def test_outputs_reconcile_in_a_pipeline():
    total = 30
    with BeamTestPipeline() as p:
        outs = (
            p
            | beam.Create(range(total), reshuffle=False)
            | beam.ParDo(_SlowFirst(3, total)).with_outputs(ERRORS, main=KEPT)
        )
        assert_that(
            outs[KEPT] | beam.Map(lambda kv: kv[1]),
            equal_to([e for e in range(total) if e % 5 or e == 0]),
            label="Kept",
        )
        assert_that(outs[ERRORS], equal_to(list(range(5, total, 5))), label="Errors")


class _Raises(ConcurrentDoFn):
    def work(self, element):
        raise RuntimeError(f"fatal on {element}")


def test_an_exception_in_work_fails_the_bundle():
    with pytest.raises(RuntimeError, match="fatal on"):
        _run_directly(_Raises(2), range(3))
