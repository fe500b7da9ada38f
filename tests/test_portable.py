"""Beam's portable runner (the Fn API path Flink and Dataflow use) and two worker processes:
the quickstart's rows and the dedup survivors equal the in-process runner's.

The fixture starts Beam's job service and an SDK worker pool as processes of their own, with
this virtualenv's interpreter first on PATH (the pool starts a bare ``python``) and the tests
directory importable, and kills them by their ids afterwards.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import apache_beam as beam
import pandas as pd
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from support import output_rows

from pipeline.config import DedupConfig, load_config
from pipeline.run import run
from pipeline.stages.dedup import Dedup

TESTS = Path(__file__).parent
CFG = DedupConfig(threshold=0.7, num_perm=128, shingle_size=3)
TWO_PROCESSES = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


@pytest.fixture(scope="module")
def portable_options():
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])),
    }
    job_port, pool_port = _free_port(), _free_port()
    modules = [
        ("apache_beam.runners.portability.local_job_service_main", "--port", job_port),
        ("apache_beam.runners.worker.worker_pool_main", "--service_port", pool_port),
    ]
    procs = []
    try:
        for module, flag, port in modules:
            command = [sys.executable, "-m", module, flag, str(port)]
            procs.append(
                subprocess.Popen(
                    command,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
            _wait_for_port(port, procs[-1])
        yield [
            "--runner=PortableRunner",
            f"--job_endpoint=localhost:{job_port}",
            "--environment_type=EXTERNAL",
            f"--environment_config=localhost:{pool_port}",
        ]
    finally:
        for proc in procs:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the process and the workers it started
            except ProcessLookupError:
                pass
            proc.wait(timeout=30)


def _inputs() -> list[dict]:
    rng = random.Random(7)
    vocab = [f"w{i}" for i in range(400)]
    rows = []
    for i in range(40):
        text = " ".join(rng.choice(vocab) for _ in range(50))
        rows.append({"id": f"p{i:03d}", "statement": text})
        if i % 4 == 0:  # a near duplicate (one word changed) and an exact one (case, spaces)
            words = text.split()
            words[20] = "changed"
            rows.append({"id": f"q{i:03d}", "statement": " ".join(words)})
            rows.append({"id": f"r{i:03d}", "statement": text.upper() + "  !"})
    return rows


def _outcomes(options: list[str], inputs: list[dict], out: Path) -> list[list]:
    """Run Dedup; (id, reason or None, cluster) of every record, written by the workers."""
    with beam.Pipeline(options=PipelineOptions(options)) as p:
        result = p | beam.Create(inputs) | Dedup(CFG)
        kept = result.kept | "KeptView" >> beam.Map(
            lambda r: json.dumps([r["id"], None, r["dedup_cluster"]])
        )
        dropped = result.dropped | "DroppedView" >> beam.Map(
            lambda r: json.dumps([r["id"], r["reason"], r["dedup_cluster"]])
        )
        _ = (kept, dropped) | beam.Flatten() | beam.io.WriteToText(str(out), shard_name_template="")
    return sorted(json.loads(line) for line in out.read_text().splitlines())


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> list[list]:
    """The in-process runner's outcomes."""
    return _outcomes(["--runner=FnApiRunner"], _inputs(), tmp_path_factory.mktemp("ref") / "o")


def test_reference_run_has_all_three_outcomes(reference):
    assert {reason for _, reason, _ in reference} == {None, "exact_duplicate", "near_duplicate"}
    assert len(reference) == len(_inputs())


def test_dedup_survivors_equal_on_the_portable_runner(portable_options, reference, tmp_path):
    assert _outcomes(portable_options, _inputs(), tmp_path / "o") == reference


def test_dedup_survivors_equal_with_two_worker_processes(reference, tmp_path):
    options = ["--runner=FnApiRunner", *TWO_PROCESSES]
    assert _outcomes(options, _inputs()[::-1], tmp_path / "o") == reference


# The quickstart on each runner: the same rows. The first (in-process) run fills the shared
# teacher cache, so the other runs differ only in how Beam runs the job; every sandbox check
# runs again on each.
def _quickstart(tmp: Path, name: str, options: list[str]) -> dict[str, list[dict]]:
    cfg = load_config("examples/quickstart.yaml", [f"teacher.cache_dir={tmp / 'cache'}"])
    manifest = run(cfg, str(tmp / name), options)
    assert manifest["funnel"]["reconciled"]
    return output_rows(lambda table: pd.read_parquet(tmp / name / table))


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("quickstart")
    return tmp, _quickstart(tmp, "in-process", ["--runner=FnApiRunner"])


def test_quickstart_reference_has_every_outcome(quickstart):
    _, rows = quickstart
    assert len(rows["data"]) > 100 and len(rows["rejected"]) > 20
    assert {r["verdict"] for r in rows["attempts"]} >= {"PASS", "FAIL_TESTS", "FAIL_ANSWER"}


@pytest.mark.timeout(600)
def test_quickstart_rows_equal_on_the_portable_runner(portable_options, quickstart):
    tmp, reference = quickstart
    assert _quickstart(tmp, "portable", portable_options) == reference


@pytest.mark.timeout(600)
def test_quickstart_rows_equal_with_two_worker_processes(quickstart):
    tmp, reference = quickstart
    assert _quickstart(tmp, "two-processes", ["--runner=FnApiRunner", *TWO_PROCESSES]) == reference


def test_seeds_fan_out_through_a_reshuffle_before_the_teacher():
    """Create's elements would stay on the worker that read them; the reshuffle spreads the
    seeds (and so the teacher calls) over all workers."""
    from pipeline.run import build
    from pipeline.stages.generate import make_seeds

    cfg = load_config("examples/quickstart.yaml")
    p = beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"]))
    build(p, cfg, make_seeds(cfg), "/tmp/unused", "run")
    transforms = p.to_runner_api().components.transforms
    by_name = {t.unique_name: t for t in transforms.values()}
    create, spread = by_name["CreateSeeds"], by_name["SpreadSeeds"]
    generate = by_name["GenerateProblems"]
    assert set(spread.inputs.values()) == set(create.outputs.values())
    assert set(generate.inputs.values()) == set(spread.outputs.values())
    # A reshuffle (runners may run it natively), keyed at random, through a GroupByKey.
    assert spread.spec.urn == "beam:transform:reshuffle:v1"
    urns = {transforms[t].spec.urn for t in _descendants(transforms, spread)}
    assert "beam:transform:group_by_key:v1" in urns


def _descendants(transforms, transform) -> list[str]:
    out = []
    for sub in transform.subtransforms:
        out += [sub, *_descendants(transforms, transforms[sub])]
    return out
