"""Tokenize-and-write throughput against the bare tokenizer's batch encode, on the same texts.

The texts are the built-in teacher's problems and reference solutions (code: statement and
reference solution; math: statement, program and answer): ``--distinct`` of them, repeated
under new ids up to ``--samples`` kept samples (tiktoken keeps no cache, so a repeat costs
what a new text of the same length costs). Both sides encode exactly the same strings: each
sample's stripped statement and its assistant text (``tokens.assistant_text``).

- bare: ``tiktoken.Encoding.encode_ordinary_batch`` over all those strings (its default
  thread pool), on the Qwen2 ranks the default tokenizer uses;
- stage: a Beam job on the in-process runner, ``Create(distinct) -> FlatMap(repeat) ->
  Tokenize -> WriteShards("data")`` (chat template, special-token check, loss mask, too_long
  check, Arrow chunks, shard count from the totals, GroupByKey per shard, zstd Parquet,
  SHA-256, stats) into a temporary directory, with the default configuration; and the same
  with ``tokens.pack: --pack`` (packed/ written as well).

The stage's rate is that of the whole job, start-up included (a few seconds, mostly pickling
the graph): content tokens over the job's wall-clock seconds, so the figure is conservative;
``--samples`` makes the start-up small against the work. Tokens counted are the content
tokens both sides encode; the template tokens the stage adds are not counted. Each of
``--repeats`` rounds measures the bare rate and both stage rates back to back; the figures are
the medians of the rounds (a ratio is the median of the per-round ratios).

    python benchmarks/tokens.py [--samples 40000] [--distinct 250] [--repeats 3]
                                [--pack 4096]

Prints ``RESULT encode_tokens_per_s``, ``RESULT stage_tokens_per_s``,
``RESULT stage_packed_tokens_per_s``, ``RESULT tokens_vs_encode`` (stage / bare; bound >= 0.7)
and ``RESULT tokens_vs_encode_packed`` (the same with packing).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import apache_beam as beam

from pipeline.config import OutputConfig, TokensConfig, load_config
from pipeline.output.write import WriteShards
from pipeline.stages.generate import make_seeds
from pipeline.stages.tokens import Tokenize, assistant_text, load_tokenizer
from pipeline.teacher.builtin import bank as teacher_bank

# What a kept sample carries besides its text (the values of a typical quickstart row).
LINEAGE = {
    "teacher_model": "builtin",
    "sampling": '{"temperature": 0.8}',
    "config_hash": "0123456789abcdef",
    "problem_prompt_hash": "p" * 16,
    "attempt_prompt_hash": "a" * 16,
    "attempt_sampling": '{"temperature": 1.0}',
    "attempt": 0,
    "attempts": 4,
    "pass_rate": 0.75,
    "verdict": "PASS",
    "isolation_level": "namespaces+uid",
    "judge_mode": "pipe",
    "audit_flags": [],
    "language": "en",
    "language_prob": 0.99,
    "entry_point": None,
    "tests": None,
}


def samples(count: int) -> list[dict]:
    cfg = load_config("examples/quickstart.yaml")
    combos = [(s["domain"], s["topic"], s["difficulty"]) for s in make_seeds(cfg)]
    out = []
    for i in range(count):
        domain, topic, difficulty = combos[i % len(combos)]
        fields = teacher_bank.build_problem(domain, topic, difficulty, i).fields
        sample_id = f"{domain}-{i:07d}"
        sample = {**LINEAGE, "id": sample_id, "dedup_cluster": sample_id}
        sample.update(domain=domain, topic=topic, difficulty=difficulty)
        sample["statement"] = fields["statement"]
        if domain == "code":
            sample.update(solution=fields["reference_solution"], answer=None)
            sample.update(entry_point=fields["entry_point"], tests=fields["tests"])
        else:
            sample.update(solution=fields["program"], answer=fields["answer"])
        out.append(sample)
    return out


def repeat(sample: dict, times: int):
    for k in range(times):
        sample_id = f"{sample['id']}-{k:04d}"
        yield {**sample, "id": sample_id, "dedup_cluster": sample_id}


def texts(rows: list[dict], times: int) -> list[str]:
    return [t for r in rows for t in (r["statement"].strip(), assistant_text(r))] * times
    return [t for r in rows for t in (r["statement"].strip(), assistant_text(r))]


def bare_seconds(strings: list[str]) -> float:
    encoding = load_tokenizer("qwen2")._encode.__self__  # the tiktoken Encoding
    started = time.perf_counter()
    encoding.encode_ordinary_batch(strings)
    return time.perf_counter() - started


def stage_seconds(rows: list[dict], times: int, pack: int) -> float:
    tokens_cfg = TokensConfig(pack=pack or None)
    output = OutputConfig(shard_rows=max(1, len(rows) * times // 4))
    tok = load_tokenizer(tokens_cfg.tokenizer)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        p = beam.Pipeline(argv=["--runner=FnApiRunner"])
        kept = (
            p
            | beam.Create(rows, reshuffle=False)
            | beam.FlatMap(repeat, times)
            | Tokenize(tokens_cfg)
        ).kept
        packing = (pack, tok.eos_id, tok.name) if pack else None
        kept | "Write" >> WriteShards("data", tmp, output, packing)
        p.run().wait_until_finish()
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=40000)
    parser.add_argument("--distinct", type=int, default=250)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pack", type=int, default=4096, help="SEQ_LEN of the packed run")
    args = parser.parse_args()

    rows = samples(args.distinct)
    times = max(1, args.samples // len(rows))
    strings = texts(rows, times)
    encoding = load_tokenizer("qwen2")._encode.__self__
    tokens = sum(len(ids) for ids in encoding.encode_ordinary_batch(strings))
    stage_seconds(rows, 1, args.pack)  # warm: tokenizer load, imports
    bare, stage, packed = [], [], []
    for _ in range(args.repeats):
        bare.append(tokens / bare_seconds(strings))
        stage.append(tokens / stage_seconds(rows, times, 0))
        packed.append(tokens / stage_seconds(rows, times, args.pack))
        print(f"round: bare {bare[-1]:.0f}/s, stage {stage[-1]:.0f}/s, packed {packed[-1]:.0f}/s")
    count = len(rows) * times
    print(f"{count} samples, {tokens} content tokens ({tokens / count:.0f} per sample)")
    print(f"RESULT encode_tokens_per_s {statistics.median(bare):.0f}")
    print(f"RESULT stage_tokens_per_s {statistics.median(stage):.0f}")
    print(f"RESULT stage_packed_tokens_per_s {statistics.median(packed):.0f}")
    ratios = [s / b for s, b in zip(stage, bare, strict=True)]
    packed_ratios = [s / b for s, b in zip(packed, bare, strict=True)]
    print(f"RESULT tokens_vs_encode {statistics.median(ratios):.3f}")
    print(f"RESULT tokens_vs_encode_packed {statistics.median(packed_ratios):.3f}")


if __name__ == "__main__":
    main()
