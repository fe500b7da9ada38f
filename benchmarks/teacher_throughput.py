"""Teacher-stage throughput against a slow, heavy-tailed teacher, as a share of the ideal.

The built-in teacher runs as its own process (``synthgen teacher-server``) with lognormal
latency (median 0.2 s, p99 2 s); the teacher stage alone (``GenerateProblems``, cache off)
runs on the in-process Beam runner at ``teacher.concurrency`` 64. The ideal rate is
concurrency / mean latency. The stage's rate is measured as the marginal rate between a run
of N and a run of 2N requests, so that pipeline start-up and the last stragglers (the same in
both runs) cancel out.

Streaming: long answers (a thinking trace of about ``--stream-tokens`` 2,000 tokens in
``reasoning_content``, then the answer) from a server that generates ``--token-rate`` tokens
per second per request and, streamed, sends them 4 tokens per event; the same stage at the same
concurrency, streamed and not (both wait for the same generation time; streaming adds the CPU
of parsing every event). Prints ``RESULT stream_vs_plain <streamed rate / plain rate>`` at
500 tokens/s per request (faster than real decoding, 20-150 tokens/s: 64 x 500 tokens/s is
8,000 events/s) and ``RESULT stream_vs_plain_fast`` at 8 x that rate, where the client's CPU
per event (the openai client's SSE decoder, ~10 us) becomes the limit.

    python benchmarks/teacher_throughput.py [--requests 1500] [--concurrency 64]

Prints ``RESULT teacher_ratio <achieved/ideal>`` and, with 10% of answers a 429 carrying
``Retry-After: 1`` (which pauses the whole worker, as the teacher stage must),
``RESULT teacher_ratio_429 <achieved/ideal>``, then ``RESULT stream_vs_plain``.
"""

from __future__ import annotations

import argparse
import math
import socket
import subprocess
import sys
import time
import urllib.request

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.config import load_config
from pipeline.stages.generate import GenerateProblems, make_seeds

MEDIAN, P99 = 0.2, 2.0
Z99 = 2.3263478740408408


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, *flags: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "pipeline.cli", "teacher-server", "--port", str(port), *flags]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1).read()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the teacher server did not start")


def stage_seconds(url: str, requests: int, concurrency: int, *settings: str) -> float:
    cfg = load_config(
        None,
        [
            *settings,
            f"teacher.base_url={url}",
            "teacher.api_key_env=SYNTHGEN_BENCH_KEY",
            f"teacher.concurrency={concurrency}",
            "teacher.cache_mode=off",
            "teacher.retries=20",
            "generation.domains=[math]",
            "generation.topics={math: [arithmetic]}",
            "generation.difficulties=[easy]",
            f"run.problems_per_combo={requests}",
        ],
    )
    seeds = make_seeds(cfg)
    started = time.perf_counter()
    with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as p:
        _ = (
            p
            | beam.Create(seeds, reshuffle=False)
            | beam.Reshuffle()
            | GenerateProblems(cfg, f"bench-{time.time_ns()}", len(seeds))
        )
    return time.perf_counter() - started


def ratio(faults: str, requests: int, concurrency: int) -> float:
    port = free_port()
    latency = f"lognormal:median={MEDIAN},p99={P99}"
    server = start_server(port, "--latency", latency, "--faults", faults, "--style", "json")
    try:
        url = f"http://127.0.0.1:{port}/v1"
        stage_seconds(url, 64, concurrency)  # warm up imports and the server
        short = stage_seconds(url, requests, concurrency)
        long = stage_seconds(url, 2 * requests, concurrency)
    finally:
        server.terminate()
        server.wait(timeout=10)
    sigma = math.log(P99 / MEDIAN) / Z99
    mean_latency = MEDIAN * math.exp(sigma**2 / 2)
    ideal = concurrency / mean_latency
    achieved = requests / (long - short)
    print(
        f"faults={faults or 'none'}: {requests} requests in {short:.1f} s, {2 * requests} in "
        f"{long:.1f} s -> {achieved:.1f} req/s; ideal {ideal:.1f} req/s "
        f"(mean latency {mean_latency:.3f} s)"
    )
    return achieved / ideal


def stream_ratio(requests: int, concurrency: int, tokens: int, rate: float) -> float:
    """Streamed / plain rate of the same long-answer requests (marginal, N vs 2N each)."""
    port = free_port()
    flags = ["--style", "reasoning_content", "--think-tokens", str(tokens)]
    server = start_server(port, *flags, "--token-rate", str(rate), "--stream-chunk-tokens", "4")
    url = f"http://127.0.0.1:{port}/v1"
    rates = {}
    try:
        for stream in ("false", "true"):
            setting = f"teacher.stream={stream}"
            stage_seconds(url, concurrency, concurrency, setting)  # warm up
            short = stage_seconds(url, requests, concurrency, setting)
            long = stage_seconds(url, 2 * requests, concurrency, setting)
            rates[stream] = requests / (long - short)
            print(
                f"stream={stream}: {requests} long answers in {short:.1f} s, {2 * requests} in "
                f"{long:.1f} s -> {rates[stream]:.2f} req/s (ideal "
                f"{concurrency * rate / tokens:.2f} req/s)"
            )
    finally:
        server.terminate()
        server.wait(timeout=10)
    return rates["true"] / rates["false"]


def main() -> int:
    import os

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=1500)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--stream-requests", type=int, default=256)
    ap.add_argument("--stream-tokens", type=int, default=2000, help="thinking tokens per answer")
    ap.add_argument("--token-rate", type=float, default=500.0, help="tokens/s per request")
    ap.add_argument("--fast-token-rate", type=float, default=4000.0, help="0 = skip")
    ap.add_argument("--skip-plain", action="store_true", help="only the streaming figure")
    args = ap.parse_args()
    os.environ.setdefault("SYNTHGEN_BENCH_KEY", "bench")
    results = {}
    if not args.skip_plain:
        results["teacher_ratio"] = ratio("", args.requests, args.concurrency)
        results["teacher_ratio_429"] = ratio(
            "429=0.1,retry_after=1", args.requests, args.concurrency
        )
    results["stream_vs_plain"] = stream_ratio(
        args.stream_requests, args.concurrency, args.stream_tokens, args.token_rate
    )
    if args.fast_token_rate:
        results["stream_vs_plain_fast"] = stream_ratio(
            2 * args.stream_requests, args.concurrency, args.stream_tokens, args.fast_token_rate
        )
    for name, value in results.items():
        print(f"RESULT {name} {value:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
