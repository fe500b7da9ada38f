"""Sandbox checks per second at the level this machine allows, next to bare interpreter spawns.

Both sides run on the same number of threads (default: the CPU count, as ``verify.workers``
does): the checks judge a correct solution against a two-test file (``pipe`` judging: a
solution process and a tests process per check, each in uids of their own and, as root, in
namespaces), and the baseline spawns ``python -c pass`` with the worker's interpreter.

    python benchmarks/sandbox_throughput.py [--checks 600] [--spawns 150] [--threads N]

Prints ``RESULT sandbox_checks_per_s``, ``RESULT spawn_per_s``, ``RESULT spawn_nosite_per_s``
(``python -S -c pass``, for reference) and ``RESULT sandbox_vs_spawn`` (checks / spawns).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from pipeline import records
from pipeline.sandbox.sandbox import Limits, Sandbox

SOLUTION = "def add(a, b):\n    return a + b\n"
TESTS = """\
from solution import add


def test_small():
    assert add(1, 2) == 3


def test_negative():
    assert add(-1, -2) == -3
"""


def rate(job, count: int, threads: int) -> float:
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda _: job(), range(min(count, 2 * threads))))  # warm up
        started = time.perf_counter()
        results = list(pool.map(lambda _: job(), range(count)))
        elapsed = time.perf_counter() - started
    if not all(results):
        raise SystemExit("a run failed: the measurement is void")
    return count / elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checks", type=int, default=600)
    ap.add_argument("--spawns", type=int, default=150)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()

    box = Sandbox(Limits())
    try:
        checks = rate(
            lambda: box.run_tests(SOLUTION, TESTS)["verdict"] == records.PASS,
            args.checks,
            args.threads,
        )
    finally:
        box.close()

    def spawn(*flags):
        return lambda: subprocess.run([sys.executable, *flags, "-c", "pass"]).returncode == 0

    spawns = rate(spawn(), args.spawns, args.threads)
    nosite = rate(spawn("-S"), args.spawns, args.threads)
    print(f"level {box.isolation_level} ({box.interpreter}), {args.threads} threads")
    print(f"RESULT sandbox_checks_per_s {checks:.1f}")
    print(f"RESULT spawn_per_s {spawns:.1f}")
    print(f"RESULT spawn_nosite_per_s {nosite:.1f}")
    print(f"RESULT sandbox_vs_spawn {checks / spawns:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
