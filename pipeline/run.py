"""The synthgen job: build the Beam graph, run it, move outputs into place, write the manifest.

Stage order (cheap filters before we pay for k solution attempts per problem)::

    Seeds -> GenerateProblems -> VerifyReference -> Decontaminate -> FilterLanguage -> Dedup
          -> GenerateAttempts -> VerifyAttempts -> SelectAttempt -> DecontaminateSolution
          -> Tokenize -> Write

Decontamination runs before language detection: a benchmark copy is reported as such even
when its statement is mostly code, which langdetect cannot place.

Every problem-level drop and error of every stage goes to ``rejected/``; every attempt goes to
``attempts/``; kept samples go to ``data/``. The pipeline writes into ``OUT/.tmp-<run id>/``; only
after it succeeded are the files moved to ``OUT/`` (replacing an earlier run's only with
``--overwrite``) and ``manifest.json`` is written, last. A failed run leaves the previous
outputs untouched.
"""

from __future__ import annotations

import json
import platform
import time
import uuid
from collections import Counter
from importlib import metadata

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

import pipeline
from pipeline import records
from pipeline.config import Config
from pipeline.output.write import STATS_DIR, WriteShards
from pipeline.prompts import prompt_hashes, resolve_prompts
from pipeline.stages.decontam import Decontaminate
from pipeline.stages.dedup import Dedup
from pipeline.stages.generate import GenerateAttempts, GenerateProblems, make_seeds
from pipeline.stages.language import FilterLanguage
from pipeline.stages.tokens import Tokenize, chat_layout, check_tokens, length_limit, load_tokenizer
from pipeline.stages.verify import SelectAttempt, VerifyAttempts, VerifyReference, errored_attempt

TABLE_DIRS = ("data", "rejected", "attempts", "packed")
TOKEN_TABLES = ("data", "packed")  # the tables whose rows carry token ids


def tables(cfg: Config) -> tuple[str, ...]:
    """The output tables this configuration writes (``packed`` only with ``tokens.pack``)."""
    return TABLE_DIRS if cfg.tokens.pack else TABLE_DIRS[:3]


MANIFEST = "manifest.json"
REPORT = "report.html"  # written by `synthgen report`; describes one run, so a new run drops it
_PACKAGES = ("apache-beam", "openai", "pyarrow", "datasketch", "langdetect", "tiktoken", "pydantic")


class OutputError(RuntimeError):
    """The output location cannot be used as asked."""


def rejected_row(record: dict) -> dict:
    return {**record, "problem": record.get("statement")}


def build(p: beam.Pipeline, cfg: Config, seeds: list[dict], out_dir: str, run_id: str) -> None:
    problems = (
        p
        | "CreateSeeds" >> beam.Create(seeds, reshuffle=False)
        | "SpreadSeeds" >> beam.Reshuffle()
        | "GenerateProblems" >> GenerateProblems(cfg, run_id, len(seeds))
    )
    reference = problems.kept | "VerifyReference" >> VerifyReference(cfg.verify)
    decontam = reference.kept | "Decontaminate" >> Decontaminate(cfg.decontam)
    language = decontam.kept | "FilterLanguage" >> FilterLanguage(cfg.language)
    dedup = language.kept | "Dedup" >> Dedup(cfg.dedup)
    upper_bound = len(seeds) * cfg.generation.attempts
    attempts = dedup.kept | "GenerateAttempts" >> GenerateAttempts(cfg, run_id, upper_bound)
    verified = attempts.kept | "VerifyAttempts" >> VerifyAttempts(cfg.verify)
    failed_attempts = (attempts.errors, verified.errors) | "AttemptErrors" >> beam.Flatten()
    judged = (
        verified.kept,
        failed_attempts | "AsFailedAttempts" >> beam.Map(errored_attempt),
    ) | "AllAttempts" >> beam.Flatten()
    selected = judged | "SelectAttempt" >> SelectAttempt(cfg.verify, cfg.generation.attempts)
    # The chosen solution is teacher text that did not exist at the first check.
    final = selected.kept | "DecontaminateSolution" >> Decontaminate(cfg.decontam)
    tokens = final.kept | "Tokenize" >> Tokenize(cfg.tokens)

    problem_stages = (problems, reference, decontam, language, dedup, selected, final, tokens)
    rejected = (
        [s.dropped for s in problem_stages] + [s.errors for s in problem_stages]
        | "AllRejected" >> beam.Flatten()
        | "RejectedRows" >> beam.Map(rejected_row)
    )
    pack = None
    if cfg.tokens.pack:
        tok = load_tokenizer(cfg.tokens.tokenizer)
        pack = (cfg.tokens.pack, tok.eos_id, tok.name)
    tokens.kept | "WriteData" >> WriteShards("data", out_dir, cfg.output, pack)
    rejected | "WriteRejected" >> WriteShards("rejected", out_dir, cfg.output)
    selected.attempt_rows | "WriteAttempts" >> WriteShards("attempts", out_dir, cfg.output)


def _files_under(path: str) -> list[str]:
    """What lies under ``path`` two levels deep, found by glob, so that object stores (where
    a "directory" is only a name prefix) answer as well as local disks."""
    patterns = [FileSystems.join(path, "*"), FileSystems.join(path, "*", "*")]
    return [m.path for r in FileSystems.match(patterns) for m in r.metadata_list]


def _delete_tree(path: str) -> None:
    for pattern in (FileSystems.join(path, "*", "*"), FileSystems.join(path, "*")):
        found = [m.path for m in FileSystems.match([pattern])[0].metadata_list]
        if found:
            FileSystems.delete(found)
    if FileSystems.exists(path):  # a local directory, now empty
        FileSystems.delete([path])


def _move_tree(src_dir: str, dst_dir: str) -> None:
    files = [m.path for m in FileSystems.match([FileSystems.join(src_dir, "*")])[0].metadata_list]
    if not FileSystems.exists(dst_dir):
        FileSystems.mkdirs(dst_dir)
    names = [f.rstrip("/").rsplit("/", 1)[-1] for f in files]
    FileSystems.rename(files, [FileSystems.join(dst_dir, n) for n in names])


def _read_stats(stats_dir: str) -> list[dict]:
    found = FileSystems.match([FileSystems.join(stats_dir, "*.json")])[0].metadata_list
    stats = []
    for item in sorted(found, key=lambda m: m.path):
        with FileSystems.open(item.path) as handle:
            stats.append(json.loads(handle.read()))
    return stats


def _counters(result) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for counter in result.metrics().query(MetricsFilter())["counters"]:
        value = counter.committed if counter.committed is not None else counter.attempted
        ns, name = counter.key.metric.namespace, counter.key.metric.name
        out.setdefault(ns, {})
        out[ns][name] = out[ns].get(name, 0) + int(value or 0)
    return out


def _versions() -> dict[str, str]:
    versions = {"synthgen": pipeline.__version__, "python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _teacher_summary(cfg: Config, counters: dict) -> dict:
    stages = {
        ns.removeprefix("teacher."): v for ns, v in counters.items() if ns.startswith("teacher.")
    }
    total = Counter()
    for values in stages.values():
        total.update(values)
    t = cfg.teacher
    cost = total.get("cost_micro_usd", 0) / 1e6
    return {
        "total": dict(total),
        "by_stage": stages,
        "cost_usd": round(cost, 6),
        "cache_hit_rate": round(
            total.get("cache_hits", 0)
            / max(1, total.get("cache_hits", 0) + total.get("cache_misses", 0)),
            4,
        ),
        "budget": {
            "max_requests": t.max_requests,
            "max_total_tokens": t.max_total_tokens,
            "max_cost_usd": t.max_cost_usd,
            "workers": t.workers,
            "exhausted": total.get(records.BUDGET_EXHAUSTED, 0) > 0,
        },
    }


def _token_summary(cfg: Config, by_table: dict) -> dict:
    data = by_table["data"]
    summary = {
        "data": sum(s["tokens"] for s in data),
        "samples": sum(s["rows"] for s in data),
        "max_length": length_limit(cfg.tokens),
    }
    if cfg.tokens.pack:
        packed = by_table["packed"]
        rows, tokens = sum(s["rows"] for s in packed), sum(s["tokens"] for s in packed)
        summary["packed"] = {
            "seq_len": cfg.tokens.pack,
            "rows": rows,
            "samples": sum(s["samples"] for s in packed),
            "tokens": tokens,
            "fill": round(tokens / (rows * cfg.tokens.pack), 4) if rows else 0.0,
        }
    return summary


def new_run_id() -> str:
    """Sortable by start time, unique: ``20261129-231538-98857f``."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


def manifest_header(run_id: str, elapsed: float) -> dict:
    """What every synthgen manifest starts with: the run, when, how long, which versions."""
    return {
        "run_id": run_id,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "elapsed_s": round(elapsed, 3),
        "versions": _versions(),
    }


def build_manifest(cfg: Config, run_id: str, requested: int, stats: list[dict], counters, elapsed):
    names = tables(cfg)
    by_table = {t: [s for s in stats if s["table"] == t] for t in names}
    rejected = Counter()
    for s in by_table["rejected"]:
        rejected.update(s["by_reason"])
    kept = sum(s["rows"] for s in by_table["data"])
    thinking = {
        table: {
            "rows": sum(s.get("reasoning", {}).get("rows", 0) for s in by_table[table]),
            "tokens": sum(s.get("reasoning", {}).get("tokens", 0) for s in by_table[table]),
        }
        for table in ("data", "attempts")
    }
    isolation, judges = Counter(), Counter()
    for s in by_table["attempts"]:
        isolation.update(s.get("isolation_levels", {}))
        judges.update(s.get("judge_modes", {}))
    tok = load_tokenizer(cfg.tokens.tokenizer)
    layout = chat_layout(cfg.tokens.tokenizer, cfg.tokens.chat_template)
    placement = None
    if cfg.tokens.reasoning == "keep":
        placement = chat_layout(cfg.tokens.tokenizer, cfg.tokens.chat_template, True).reasoning
    written = {name for t in TOKEN_TABLES for s in by_table.get(t, []) for name in s["tokenizers"]}
    if written - {tok.name}:
        raise OutputError(f"refusing to mix tokenizers in one output: {sorted(written)}")
    shard_fields = ("file", "rows", "tokens", "bytes", "sha256")
    return {
        "schema_version": records.SCHEMA_VERSION,
        **manifest_header(run_id, elapsed),
        "config": cfg.model_dump(mode="json"),
        "config_hash": cfg.config_hash(),
        "prompts": prompt_hashes(resolve_prompts(cfg)),
        "tokenizer": {
            "name": tok.name,
            "vocab_size": tok.vocab_size,
            "sha256": tok.files_hash,
            "chat_template": {"source": layout.source, "sha256": layout.sha256},
            # keep: the thinking in the assistant turn, where the template puts it ("template")
            # or inline as <think>...</think> ("inline"); drop: the answer only.
            "reasoning": {"mode": cfg.tokens.reasoning, "placement": placement},
            "eos_token": tok.eos_token,
        },
        "funnel": {
            "requested": requested,
            "kept": kept,
            "rejected": sum(rejected.values()),
            "rejected_by_reason": dict(sorted(rejected.items())),
            "reconciled": requested == kept + sum(rejected.values()),
        },
        "attempts": {
            "rows": sum(s["rows"] for s in by_table["attempts"]),
            "isolation_levels": dict(isolation),
            "judge_modes": dict(judges),
        },
        "tokens": _token_summary(cfg, by_table),
        # Rows that carry the teacher's thinking trace, and its tokens as the server reported
        # them (completion_tokens_details.reasoning_tokens; 0 where it reports none).
        "reasoning": thinking,
        "teacher": _teacher_summary(cfg, counters),
        "stages": {ns: v for ns, v in sorted(counters.items()) if not ns.startswith("teacher.")},
        "shards": {t: [{k: s[k] for k in shard_fields} for s in by_table[t]] for t in names},
    }


def run(cfg: Config, output: str, beam_args: list[str], overwrite: bool = False) -> dict:
    """Run the job into ``output``; returns the manifest (also written as OUT/manifest.json)."""
    output = output.rstrip("/")
    if _files_under(output) and not overwrite:
        raise OutputError(f"output directory {output} is not empty; pass --overwrite to replace it")
    seeds = make_seeds(cfg)
    check_tokens(cfg.tokens)  # fail now, not on a worker
    run_id = new_run_id()
    tmp_dir = FileSystems.join(output, f".tmp-{run_id}")
    started = time.monotonic()
    options = PipelineOptions(beam_args)
    p = beam.Pipeline(options=options)
    build(p, cfg, seeds, tmp_dir, run_id)
    result = p.run()
    result.wait_until_finish()
    stats = _read_stats(FileSystems.join(tmp_dir, STATS_DIR))
    manifest = build_manifest(
        cfg, run_id, len(seeds), stats, _counters(result), time.monotonic() - started
    )
    publish(tmp_dir, output, manifest, tables(cfg), stale=TABLE_DIRS)
    return manifest


def publish(tmp_dir: str, output: str, manifest: dict, tables, stale=()) -> None:
    """Move ``tables`` from ``tmp_dir`` into ``output`` (replacing an earlier run's, and any
    ``stale`` ones), remove ``tmp_dir``, then write the manifest: last, so its presence means
    the outputs are complete."""
    manifest_path = FileSystems.join(output, MANIFEST)
    for name in (MANIFEST, REPORT):
        if FileSystems.exists(FileSystems.join(output, name)):
            FileSystems.delete([FileSystems.join(output, name)])
    for table in dict.fromkeys((*tables, *stale)):
        _delete_tree(FileSystems.join(output, table))
    for table in tables:
        _move_tree(FileSystems.join(tmp_dir, table), FileSystems.join(output, table))
    _delete_tree(tmp_dir)
    manifest_tmp = manifest_path + ".tmp"
    with FileSystems.create(manifest_tmp) as handle:
        handle.write(json.dumps(manifest, indent=2).encode())
    FileSystems.rename([manifest_tmp], [manifest_path])
