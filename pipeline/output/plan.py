"""Plan for scale: a pilot run's manifest + a target of kept tokens -> teacher calls, cost,
workers, hours and dedup memory.

``plan(manifest, target_tokens, Assumptions(...))`` returns a dict (``synthgen plan --json``);
``format_plan`` renders it as text. Every count at scale is a pilot count times one factor,
``scale = problems to request / problems the pilot requested``; the pilot supplies the ratios
(yield, tokens per kept sample, teacher calls and tokens per call, sandbox checks, duplicates),
the benchmarks below supply the rates, and ``Assumptions`` holds what neither can know (prices,
the teacher's latency, quotas, the machine). docs/scale.md explains every number.

Raises FileNotFoundError for a missing manifest and ValueError for input that cannot be planned
from (a target <= 0, a pilot that kept nothing, a manifest that is not a synthgen run's).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

# ---- Measured rates (2-core machine, Python 3.11; per core unless said otherwise) ----------
# benchmarks/teacher_throughput.py with a zero-latency teacher (issue 3's closing note): the
# teacher stage costs ~4.4 ms CPU per call in the pipeline process, 219 calls/s per process.
TEACHER_CALLS_PER_CORE_S = 220.0
# python benchmarks/sandbox_throughput.py: RESULT sandbox_checks_per_s 108.9 on 2 threads of
# 2 cores (namespaces+uid, a trivial pipe-judged solution and two tests).
SANDBOX_CHECKS_PER_CORE_S = 108.9 / 2
# python benchmarks/dedup_scale.py: the whole Dedup stage, 100k docs in 162.5 s on the
# in-process runner of a 2-core machine (counted as both cores: conservative), peak RSS 1764 MB.
DEDUP_DOCS_PER_CORE_S = 100_000 / 162.5 / 2
DEDUP_PEAK_MB_PER_DOC = 1764 / 100_000
# python benchmarks/minhash.py: RESULT minhash_synthgen_per_s 9246 (signatures only; shown for
# reference, already inside the Dedup stage's rate).
MINHASH_DOCS_PER_CORE_S = 9246.0
# The team's field notes ("Data stages"): langdetect ~490 texts/s on one core (no benchmark
# in benchmarks/).
LANGUAGE_TEXTS_PER_CORE_S = 490.0
# python benchmarks/tokens.py: RESULT stage_tokens_per_s 737926, tokenize-and-write (template,
# mask, zstd Parquet) as a whole job, start-up included; 0.63-0.86 M across rounds: the low end.
TOKENS_PER_CORE_S = 600_000.0

# ---- Sizes assumed for the dedup memory estimate (bytes) -----------------------------------
ID_BYTES = 100  # sys.getsizeof of a ~25-character id (74) plus its slot in a set or list
BAND_ENTRY_BYTES = 75  # one (band key, id) pair in shuffle: "t17:" + 24 hex digits + id + framing
PAIR_BYTES = 60  # one (root id, member id) candidate or edge in shuffle
RECORD_BYTES_PER_TOKEN = 4  # text of a problem record: ~4 bytes of UTF-8 per token
RECORD_FIXED_BYTES = 1024  # the record's other fields (ids, hashes, lineage, pickling)
# pipeline/stages/minhash.py: word-hash cache, cleared past 2**20 words (~100 B)
WORD_CACHE_MB = 100

STAGES = ("generate", "attempts")  # teacher stages, as in the manifest's teacher.by_stage


@dataclass(frozen=True)
class Assumptions:
    """What the pilot cannot tell. None means: from the pilot's config (or not given)."""

    price_prompt: float | None = None  # USD per 1M prompt tokens
    price_completion: float | None = None  # USD per 1M completion tokens
    teacher_latency_s: float = 20.0  # mean seconds per call of the real teacher
    concurrency: int | None = None  # calls in flight per teacher stage per worker process
    rpm: int | None = None  # the API's requests per minute, all workers together (0 = none)
    tpm: int | None = None  # the API's tokens per minute, all workers together (0 = none)
    workers: int | None = None  # a fixed number of workers: the plan gives the hours
    hours: float = 24.0  # else: finish within this many hours, the plan gives the workers
    cores_per_worker: int = 4  # n1-standard-4 / e2-standard-4: one Python SDK process per vCPU
    memory_gb_per_worker: float = 15.0  # n1-standard-4
    vcpu_hour_usd: float = 0.056  # Dataflow batch, us-central1 list price
    gb_hour_usd: float = 0.003557  # Dataflow batch memory, us-central1 list price
    shuffle_gb_usd: float = 0.011  # Dataflow Shuffle (batch), per GB processed

    def check(self) -> None:
        if (self.price_prompt is None) != (self.price_completion is None):
            raise ValueError("give both --price-prompt and --price-completion, or neither")
        positive = {
            "--teacher-latency-s": self.teacher_latency_s,
            "--hours": self.hours,
            "--cores-per-worker": self.cores_per_worker,
            "--memory-gb-per-worker": self.memory_gb_per_worker,
        }
        for opt in ("concurrency", "workers"):
            if getattr(self, opt) is not None:
                positive[f"--{opt}"] = getattr(self, opt)
        for flag, value in positive.items():
            if not value > 0:
                raise ValueError(f"{flag} must be > 0, got {value}")
        for flag, value in {
            "--price-prompt": self.price_prompt,
            "--price-completion": self.price_completion,
            "--rpm": self.rpm,
            "--tpm": self.tpm,
            "--vcpu-hour-usd": self.vcpu_hour_usd,
            "--gb-hour-usd": self.gb_hour_usd,
            "--shuffle-gb-usd": self.shuffle_gb_usd,
        }.items():
            if value is not None and value < 0:
                raise ValueError(f"{flag} must be >= 0, got {value}")


def load_manifest(path: str) -> dict:
    """The manifest of a pilot output directory (or the manifest file itself)."""
    p = Path(path)
    manifest_path = p if p.is_file() else p / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{p} has no manifest.json: not a finished synthgen output")
    return json.loads(manifest_path.read_text())


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def _teacher_stage(counters: dict, scale: float) -> dict:
    """Calls of one teacher stage: every call is answered by the server (a cache miss) or the
    cache (a hit); at scale nothing is cached, so each call is billed."""
    hits, misses = counters.get("cache_hits", 0), counters.get("cache_misses", 0)
    calls = hits + misses

    def tokens(kind: str) -> int:  # billed and cached calls alike
        return counters.get(f"{kind}_tokens", 0) + counters.get(f"cached_{kind}_tokens", 0)

    known = tokens("prompt") + tokens("completion") > 0  # calls whose tokens were not recorded
    return {
        "pilot_calls": calls,
        "pilot_billed_calls": misses,
        "calls": calls * scale,
        "prompt_tokens_per_call": _ratio(tokens("prompt"), calls) if known else None,
        "completion_tokens_per_call": _ratio(tokens("completion"), calls) if known else None,
        "http_requests_per_call": _ratio(counters.get("requests", 0), misses),
    }


def _dedup(d: dict, counts: dict, scale: float, tokens_per_sample: float, a: Assumptions) -> dict:
    """Shuffle bytes and the largest single-worker groups of the Dedup stage
    (pipeline/stages/dedup.py) at scale, from the pilot's dedup counters and config ``d``."""
    # Beam: not needed to build the CLI
    from pipeline.stages.dedup import RECALL_WEIGHTS, lsh_params

    bands, rows = lsh_params(d["threshold"], d["num_perm"], *RECALL_WEIGHTS)
    spaces = 2 if d.get("solution") else 1  # dedup.solution bands the solution too
    pilot_docs = sum(counts.values())
    docs = pilot_docs * scale
    exact, near = counts.get("exact_duplicate", 0), counts.get("near_duplicate", 0)
    near_rate = _ratio(near, pilot_docs - exact) or 0.0
    dup_rate = _ratio(exact + near, pilot_docs) or 0.0
    # An upper bound: the statement is a part of the sample, and a word is at least one token.
    shingles = tokens_per_sample
    record_bytes = RECORD_BYTES_PER_TOKEN * tokens_per_sample + RECORD_FIXED_BYTES
    per_doc = {
        "records": 2 * record_bytes,  # GroupByExactKey, and the join back by id (JoinRoots)
        "band_keys": spaces * bands * BAND_ENTRY_BYTES,  # GroupByBand
        "shingle_sets": spaces * 2 * 4 * shingles,  # JoinRootSets and JoinMemberSets
        "candidates": near_rate * (bands * PAIR_BYTES + 4 * shingles),  # pairs + the root's set
    }
    largest = math.ceil(docs * dup_rate) + 1  # upper bound: every duplicate in one cluster
    if not d.get("enabled", True):  # the stage only stamps dedup_cluster: no shuffle, no groups
        per_doc, largest = dict.fromkeys(per_doc, 0.0), 0
    return {
        "docs": docs,
        "bands": bands,
        "rows": rows,
        "band_key_spaces": spaces,
        "num_perm": d["num_perm"],
        "near_duplicate_rate": near_rate,
        "duplicate_rate": dup_rate,
        "shingles_per_doc_max": shingles,
        "record_bytes": record_bytes,
        "shuffle_bytes_per_doc": per_doc,
        "shuffle_gb": docs * sum(per_doc.values()) / 1e9,
        "signatures_gb_if_held": docs * d["num_perm"] * 4 / 1e9,
        "band_keys": docs * bands * spaces,
        "largest_cluster_max": largest,
        "largest_group_mb": largest * ID_BYTES / 1e6,
        "largest_exact_group_mb": largest * record_bytes / 1e6,
        "process_memory_mb": a.memory_gb_per_worker * 1000 / a.cores_per_worker,
        "word_cache_mb": WORD_CACHE_MB,
        "one_machine_gb": docs * DEDUP_PEAK_MB_PER_DOC / 1000,
        "cc_rounds": d.get("cc_rounds"),
    }


def plan(manifest: dict, target_tokens: float, a: Assumptions = Assumptions()) -> dict:
    a.check()
    if not target_tokens > 0:
        raise ValueError(f"--target-tokens must be > 0, got {target_tokens:g}")
    if "funnel" not in manifest or "teacher" not in manifest:
        raise ValueError("the manifest is not a synthgen run's (no funnel or teacher section)")
    funnel, cfg, stages = manifest["funnel"], manifest["config"], manifest.get("stages", {})
    requested, kept = funnel["requested"], funnel["kept"]
    if not kept or not manifest["tokens"]["data"]:
        raise ValueError(f"the pilot kept no sample ({requested} requested): nothing to scale")

    # ---- target -> problems to request -------------------------------------------------------
    tokens_per_sample = manifest["tokens"]["data"] / manifest["tokens"]["samples"]
    yield_ = kept / requested
    kept_needed = math.ceil(target_tokens / tokens_per_sample)
    problems = math.ceil(kept_needed / yield_)
    scale = problems / requested

    # ---- teacher -----------------------------------------------------------------------------
    by_stage = manifest["teacher"].get("by_stage", {})
    teacher = {s: _teacher_stage(by_stage.get(s, {}), scale) for s in STAGES}
    calls = sum(t["calls"] for t in teacher.values())
    pilot_calls = sum(t["pilot_calls"] for t in teacher.values())
    pilot_billed = sum(t["pilot_billed_calls"] for t in teacher.values())
    measured = all(
        t["prompt_tokens_per_call"] is not None for t in teacher.values() if t["pilot_calls"]
    )
    prompt_tokens = completion_tokens = None
    if measured:
        prompt_tokens = sum(
            t["calls"] * (t["prompt_tokens_per_call"] or 0) for t in teacher.values()
        )
        completion_tokens = sum(
            t["calls"] * (t["completion_tokens_per_call"] or 0) for t in teacher.values()
        )
    total = manifest["teacher"].get("total", {})
    http_per_call = _ratio(total.get("requests", 0), pilot_billed) or 1.0
    model = cfg["teacher"]["model"]
    price, price_source = None, "no price given"
    if a.price_prompt is not None:
        price = (a.price_prompt, a.price_completion)
        price_source = "--price-prompt/--price-completion"
    elif model in cfg["teacher"].get("prices", {}):
        p = cfg["teacher"]["prices"][model]
        price, price_source = (p["prompt"], p["completion"]), f"config teacher.prices.{model}"
    teacher_usd = None
    if price is not None and measured:
        teacher_usd = (prompt_tokens * price[0] + completion_tokens * price[1]) / 1e6

    # ---- rates: the teacher stage per worker process, and the API quota -----------------------
    concurrency = a.concurrency or cfg["teacher"]["concurrency"]
    rpm = cfg["teacher"].get("rpm", 0) if a.rpm is None else a.rpm
    tpm = cfg["teacher"].get("tpm", 0) if a.tpm is None else a.tpm
    in_flight_rate = concurrency / a.teacher_latency_s
    process_rate = min(in_flight_rate, TEACHER_CALLS_PER_CORE_S)
    quota_rates = {}
    if rpm:
        quota_rates["rpm"] = rpm / 60 / http_per_call
    if tpm and measured and calls:
        quota_rates["tpm"] = tpm / 60 / ((prompt_tokens + completion_tokens) / calls)
    quota_rate = min(quota_rates.values()) if quota_rates else None
    quota_s = calls / quota_rate if quota_rate else 0.0

    # ---- sandbox, dedup, language, tokens: CPU seconds ---------------------------------------
    reference = stages.get("reference", {})
    verify = stages.get("verify", {})
    # Verdicts of attempts that ran; math attempts are compared with the answer, not run.
    pilot_checks = sum(reference.values()) + sum(
        v for k, v in verify.items() if k not in ("kept", "not_run", "error", "compared")
    )
    pilot_checks -= verify.get("compared", 0)
    timeouts = verify.get("fail_timeout", 0) * scale
    timeout_s = cfg["verify"]["timeout_s"]
    checks = pilot_checks * scale
    dedup_counts = stages.get("dedup", {})
    texts = sum(stages.get("language", {}).values()) * scale
    core_s = {
        "sandbox": checks / SANDBOX_CHECKS_PER_CORE_S + timeouts * timeout_s,
        "dedup": sum(dedup_counts.values()) * scale / DEDUP_DOCS_PER_CORE_S,
        "language": texts / LANGUAGE_TEXTS_PER_CORE_S,
        "tokenize": target_tokens / TOKENS_PER_CORE_S,
    }
    other_core_s = sum(core_s.values())

    # ---- workers and hours ---------------------------------------------------------------------
    cores, budget_s = a.cores_per_worker, a.hours * 3600
    teacher_worker_s = calls / (process_rate * cores)  # worker-seconds the teacher stages hold
    other_worker_s = other_core_s / cores
    fits = quota_s < budget_s
    if a.workers:
        workers = a.workers
    elif fits:
        need = (teacher_worker_s + other_worker_s) / budget_s
        if quota_s:
            need = max(need, other_worker_s / (budget_s - quota_s))
        workers = max(1, math.ceil(need))
    else:  # the quota alone exceeds the hours: keep up with it, run the rest within the hours
        workers = max(
            1, math.ceil(teacher_worker_s / quota_s), math.ceil(other_worker_s / budget_s)
        )
    teacher_s = max(calls / (process_rate * cores * workers), quota_s)
    seconds = teacher_s + other_core_s / (cores * workers)
    stage_hours = {"teacher": teacher_s / 3600}
    stage_hours.update({k: v / cores / workers / 3600 for k, v in core_s.items()})
    bottleneck = max(stage_hours, key=stage_hours.get)
    if bottleneck != "teacher":
        bound = "CPU"
    elif quota_s and quota_s >= calls / (process_rate * cores * workers):
        bound = "API quota (" + min(quota_rates, key=quota_rates.get) + ")"
    elif process_rate < in_flight_rate:
        bound = "CPU (teacher client)"
    else:
        bound = "calls in flight (concurrency / latency)"

    dedup = _dedup(cfg["dedup"], dedup_counts, scale, tokens_per_sample, a)

    # ---- cost ------------------------------------------------------------------------------------
    worker_hours = workers * seconds / 3600
    compute_usd = worker_hours * (cores * a.vcpu_hour_usd + a.memory_gb_per_worker * a.gb_hour_usd)
    shuffle_usd = dedup["shuffle_gb"] * a.shuffle_gb_usd
    shards = manifest.get("shards", {})
    data_bytes = sum(s["bytes"] for s in shards.get("data", []))
    other_bytes = sum(s["bytes"] for t, ss in shards.items() if t != "data" for s in ss)

    notes = []
    if cfg["teacher"]["base_url"] == "builtin":
        notes.append(
            "the pilot's teacher is the built-in teacher, not a language model: its yield, "
            "defect rates and token counts are synthetic; plan from a pilot on the real teacher"
        )
    if not measured:
        notes.append(
            "tokens per call unknown: the pilot's manifest records no token counts for a "
            "stage that made calls; rerun the pilot with --cache refresh"
        )
    if price is None:
        notes.append(f"no price given for {model}: tokens only (--price-prompt/--price-completion)")
    if bound.startswith("calls in flight"):
        notes.append(
            f"the teacher stage waits on the API: {concurrency} calls in flight per process "
            f"keep a core {process_rate / TEACHER_CALLS_PER_CORE_S:.1%} busy; raising "
            "teacher.concurrency (at most 1024) divides the workers it needs"
        )
    if not fits:
        notes.append(
            f"the API quota alone needs {quota_s / 3600:,.1f} h, more than --hours "
            f"{a.hours:g}; planned with {workers} workers"
        )
    notes.append("decontamination is not counted: no benchmark measures it")

    return {
        "target": {"tokens": target_tokens},
        "pilot": {
            "run_id": manifest.get("run_id"),
            "teacher_model": model,
            "base_url": cfg["teacher"]["base_url"],
            "requested": requested,
            "kept": kept,
            "yield": yield_,
            "tokens_per_kept_sample": tokens_per_sample,
            "teacher_calls": pilot_calls,
            "teacher_billed_calls": pilot_billed,
            "calls_per_problem": {s: teacher[s]["pilot_calls"] / requested for s in STAGES},
            "sandbox_checks_per_problem": pilot_checks / requested,
            "elapsed_s": manifest.get("elapsed_s"),
        },
        "teacher": {
            "kept_needed": kept_needed,
            "problems": problems,
            "scale": scale,
            "calls": calls,
            "by_stage": teacher,
            "http_requests": calls * http_per_call,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "price_usd_per_1m": price,
            "price_source": price_source,
            "cost_usd": teacher_usd,
            "concurrency": concurrency,
            "latency_s": a.teacher_latency_s,
            "calls_per_s_per_process": process_rate,
            "concurrency_to_saturate_a_core": math.ceil(
                TEACHER_CALLS_PER_CORE_S * a.teacher_latency_s
            ),
            "rpm": rpm,
            "tpm": tpm,
            "quota_calls_per_s": quota_rate,
            "quota_hours": quota_s / 3600,
        },
        "sandbox": {
            "checks": checks,
            "timeouts": timeouts,
            "timeout_s": timeout_s,
            "cpu_hours": core_s["sandbox"] / 3600,
        },
        "dedup": dedup,
        "compute": {
            "cores_per_worker": cores,
            "memory_gb_per_worker": a.memory_gb_per_worker,
            "cpu_hours": {
                "teacher": calls / TEACHER_CALLS_PER_CORE_S / 3600,
                **{k: v / 3600 for k, v in core_s.items()},
            },
            "texts_language": texts,
            "workers": workers,
            "workers_for": "given (--workers)"
            if a.workers
            else (
                f"to finish in {a.hours:g} h"
                if fits
                else f"keep up with the quota, rest in {a.hours:g} h"
            ),
            "hours": seconds / 3600,
            "stage_hours": stage_hours,
            "worker_hours": worker_hours,
            "output_gb": (data_bytes / manifest["tokens"]["data"] * target_tokens) / 1e9
            + other_bytes * scale / 1e9,
        },
        "cost": {
            "teacher_usd": teacher_usd,
            "dataflow_compute_usd": compute_usd,
            "dataflow_shuffle_usd": shuffle_usd,
            "total_usd": None if teacher_usd is None else teacher_usd + compute_usd + shuffle_usd,
        },
        "bottleneck": {"stage": bottleneck, "hours": stage_hours[bottleneck], "bound": bound},
        "assumptions": asdict(a),
        "measured": {
            "teacher_calls_per_core_s": TEACHER_CALLS_PER_CORE_S,
            "sandbox_checks_per_core_s": SANDBOX_CHECKS_PER_CORE_S,
            "dedup_docs_per_core_s": DEDUP_DOCS_PER_CORE_S,
            "minhash_docs_per_core_s": MINHASH_DOCS_PER_CORE_S,
            "language_texts_per_core_s": LANGUAGE_TEXTS_PER_CORE_S,
            "tokens_per_core_s": TOKENS_PER_CORE_S,
        },
        "notes": notes,
    }


# ---- text --------------------------------------------------------------------------------------


def _num(x, digits: int = 0) -> str:
    return "unknown" if x is None else f"{x:,.{digits}f}"


def _usd(x) -> str:
    return "unknown" if x is None else f"${x:,.2f}"


def format_plan(p: dict) -> str:
    pi, t, sb, d, c, co = (
        p[k] for k in ("pilot", "teacher", "sandbox", "dedup", "compute", "cost")
    )
    a, m = p["assumptions"], p["measured"]
    lines = [f"synthgen plan: {_num(p['target']['tokens'])} kept tokens"]

    def section(title: str) -> None:
        lines.extend(["", title])

    def row(label: str, value: str, how: str = "") -> None:
        lines.append(f"  {label:<30} {value:>16}  {how}".rstrip())

    section("target")
    row("kept tokens (N)", _num(p["target"]["tokens"]), "tokens.data: whole conversations")
    section(f"from the pilot (run {pi['run_id']}, teacher {pi['teacher_model']})")
    row("problems requested", _num(pi["requested"]), "funnel.requested")
    row("samples kept", _num(pi["kept"]), "funnel.kept")
    row("yield", f"{pi['yield']:.4f}", "kept / requested")
    row("tokens per kept sample", _num(pi["tokens_per_kept_sample"], 1), "tokens.data / samples")
    for s, calls in pi["calls_per_problem"].items():
        row(f"{s} calls per problem", f"{calls:.3f}", f"teacher.by_stage.{s}: hits + misses")
    row("teacher calls (billed)", f"{pi['teacher_calls']:,} ({pi['teacher_billed_calls']:,})",
        "cache hits + misses (misses)")  # fmt: skip
    row("sandbox checks per problem", f"{pi['sandbox_checks_per_problem']:.3f}",
        "stages: reference + attempts run")  # fmt: skip
    section("teacher")
    row("kept samples needed", _num(t["kept_needed"]), "ceil(N / tokens per kept sample)")
    row("problems to request", _num(t["problems"]), "ceil(kept needed / yield)")
    row("scale over the pilot", f"{t['scale']:,.1f}x", "problems / pilot requested")
    for s, st in t["by_stage"].items():
        row(f"{s} calls", _num(st["calls"]), "pilot calls x scale")
        per_call = (st["prompt_tokens_per_call"], st["completion_tokens_per_call"])
        row("  tokens per call", " + ".join(_num(x, 1) for x in per_call), "prompt + completion")
    row("teacher calls", _num(t["calls"]), "nothing is cached at scale")
    row("HTTP requests", _num(t["http_requests"]), "calls x pilot requests per billed call")
    row("prompt tokens", _num(t["prompt_tokens"]), "sum of calls x tokens per call")
    row("completion tokens", _num(t["completion_tokens"]))
    price = t["price_usd_per_1m"]
    row("price per 1M tokens", "none" if price is None else f"${price[0]:g} / ${price[1]:g}",
        t["price_source"])  # fmt: skip
    row("teacher cost", _usd(t["cost_usd"]), "tokens x price")
    row("calls/s per worker process", f"{t['calls_per_s_per_process']:.2f}",
        f"min({t['concurrency']} in flight / {t['latency_s']:g} s, "
        f"{m['teacher_calls_per_core_s']:g} CPU ceiling)")  # fmt: skip
    row("concurrency to fill a core", _num(t["concurrency_to_saturate_a_core"]),
        "CPU ceiling x latency")  # fmt: skip
    quota = "none" if t["quota_calls_per_s"] is None else f"{t['quota_calls_per_s']:,.1f} calls/s"
    row("API quota", quota, f"rpm {t['rpm']}, tpm {t['tpm']}")
    if t["quota_calls_per_s"]:
        row("hours at the quota", _num(t["quota_hours"], 1), "calls / quota")
    section("sandbox")
    row("checks", _num(sb["checks"]), "pilot reference + attempt checks x scale")
    row("timeouts", _num(sb["timeouts"]), f"each holds a core {sb['timeout_s']:g} s")
    row("CPU hours", _num(sb["cpu_hours"], 1),
        f"checks / {m['sandbox_checks_per_core_s']:.1f} per core-s + timeouts")  # fmt: skip
    section("dedup")
    row("documents", _num(d["docs"]), "pilot dedup inputs x scale")
    row("LSH bands x rows", f"{d['bands']} x {d['rows']}", f"num_perm {d['num_perm']}")
    row("duplicate rate (near)", f"{d['duplicate_rate']:.4f} ({d['near_duplicate_rate']:.4f})")
    for part, value in d["shuffle_bytes_per_doc"].items():
        row(f"shuffle per doc: {part}", f"{value:,.0f} B")
    row("shuffle total", f"{d['shuffle_gb']:,.1f} GB", "documents x bytes per doc")
    row("signatures if all held", f"{d['signatures_gb_if_held']:,.1f} GB",
        "never held: cut into band keys per record")  # fmt: skip
    row("largest cluster (bound)", _num(d["largest_cluster_max"]), "every duplicate in one")
    row("  its bucket / CC neighbours", f"{d['largest_group_mb']:,.1f} MB",
        f"x {ID_BYTES} B per id, one worker")  # fmt: skip
    row("  as exact copies in one group", f"{d['largest_exact_group_mb']:,.1f} MB",
        "x record bytes, if materialised")  # fmt: skip
    row("memory per worker process", f"{d['process_memory_mb']:,.0f} MB",
        "memory per worker / cores")  # fmt: skip
    row("one machine, in-process", f"{d['one_machine_gb']:,.1f} GB",
        "documents x 17.6 KB (dedup_scale peak)")  # fmt: skip
    section(f"compute ({c['cores_per_worker']} vCPU, {c['memory_gb_per_worker']:g} GB per worker)")
    for stage, hours in c["cpu_hours"].items():
        row(f"CPU hours: {stage}", _num(hours, 1))
    row("workers", _num(c["workers"]), c["workers_for"])
    row("hours", _num(c["hours"], 1), "stages one after another")
    for stage, hours in c["stage_hours"].items():
        row(f"  {stage}", _num(hours, 2))
    row("worker hours", _num(c["worker_hours"], 0))
    row("output size", f"{c['output_gb']:,.1f} GB", "pilot bytes per token / per problem")
    section("cost")
    row("teacher", _usd(co["teacher_usd"]))
    row("Dataflow workers", _usd(co["dataflow_compute_usd"]),
        f"worker hours x ({c['cores_per_worker']} x ${a['vcpu_hour_usd']:g} + "
        f"{c['memory_gb_per_worker']:g} x ${a['gb_hour_usd']:g})")  # fmt: skip
    row("Dataflow shuffle", _usd(co["dataflow_shuffle_usd"]), f"GB x ${a['shuffle_gb_usd']:g}")
    row("total", _usd(co["total_usd"]))
    section("bottleneck")
    b = p["bottleneck"]
    row(b["stage"], f"{b['hours']:,.1f} h", f"bound by {b['bound']}")
    for note in p["notes"]:
        lines.append(f"note: {note}")
    return "\n".join(lines)
