"""Dedup stage at scale: wall time, peak memory, precision and recall on planted duplicates.

The whole ``Dedup`` transform (``DedupConfig(threshold=...)``, other settings default) runs on
Beam's in-process runner (``--runner=FnApiRunner``) over 10k, 30k and 100k synthetic documents.
Each size runs in a fresh subprocess of this script (``--one N``), so its peak RSS is its own.

    python benchmarks/dedup_scale.py [--sizes 10000,30000,100000] [--threshold 0.8] [--seed 0]

Documents (deterministic for a size and ``--seed``): English-like texts of 40-120 words drawn
from a 4,000-word syllable vocabulary with Zipf-like weights, capitals and punctuation, so
unrelated documents share almost no word 5-gram. Of N documents, 84 % are originals, 15 % are
planted near duplicates and 1 % planted exact duplicates:

- a near duplicate copies one original (each original is copied at most once, so a cluster is
  an original and its copy, plus any exact duplicate of either) and edits it one word at a
  time (substitute, insert or delete at a random position) towards a target Jaccard drawn
  uniformly from [0.70, 1.00): an edit is kept while the true Jaccard stays at or above the
  target, and there is always at least one. This spreads the true Jaccard over about
  0.70-0.98, around and above the threshold;
- an exact duplicate repeats an original or a near duplicate, verbatim or with its case and
  punctuation changed (the same normalised text, true Jaccard 1.0).

Ids (``doc-0000000`` ...) are assigned in a random order, so a copy's id is as often smaller as
larger than its source's; the evaluation only compares ``dedup_cluster`` values and never
assumes which of a pair survives. The true Jaccard of two documents is always that of their
``pipeline.stages.dedup.shingles(text, 5)`` sets.

Definitions:

- positives: the planted pairs (source, copy), near and exact, whose true Jaccard is at least
  the threshold;
- recall: the fraction of positives whose two records end with the same ``dedup_cluster``
  (over kept + dropped outputs). ``dedup_recall_<t>_<t+0.05>`` and ``dedup_recall_ge_<t+0.05>``
  split it by the pair's true Jaccard (exact duplicates fall in the upper band);
- precision (pair definition): among all unordered pairs of records that share a
  ``dedup_cluster``, the fraction whose true Jaccard is at least the threshold. A planted pair
  below the threshold that the stage merges counts against precision, as does any other pair
  swept into a cluster. (The cheaper per-record figure, among dropped records the fraction
  whose true Jaccard with the record named by ``detail`` reaches the threshold, is printed on
  each size's line for reference only.)

Recall and precision in the RESULT lines pool the pairs of all sizes.

Wall time is measured from building the pipeline to its end: ``Create`` of the records (no
reshuffle), ``Dedup``, and a one-file text sink of (id, dedup_cluster, reason, detail) rows.
Before it, each subprocess runs the same pipeline once on 200 documents to warm up imports and
caches (its time is printed, not counted). Peak memory is ``ru_maxrss`` of the subprocess read
right after the timed run, before the evaluation; it includes the driver's copy of the
documents (the RSS before the run is printed as ``base``).

Prints a line per size, then ``RESULT dedup_seconds_<size>`` for each size,
``RESULT dedup_peak_mb_<largest>``, ``RESULT dedup_<largest>_over_<smallest>`` (time ratio),
``RESULT dedup_recall``, ``RESULT dedup_recall_<t>_<t+0.05>``, ``RESULT dedup_recall_ge_<t+0.05>``
and ``RESULT dedup_precision`` (names use ``10k``-style sizes).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from itertools import combinations

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.config import DedupConfig
from pipeline.stages.dedup import Dedup, shingles
from pipeline.stages.minhash import normalize_text

SHINGLE = 5
NEAR_SHARE, EXACT_SHARE = 0.15, 0.01
TARGET_LOW, TARGET_HIGH = 0.70, 1.00
BAND = 0.05
WARM_UP_DOCS = 200
# A cluster larger than this has its pairs sampled (and the sample scaled) for precision, so a
# badly over-merging stage cannot make the evaluation quadratic.
MAX_CLUSTER_PAIRS = 20_000

SYLLABLES = "ka lo mi ne ru sa te vo pi da gre tan bel for is an the of to in".split()
PUNCTUATION = [",", ".", ";", "!", "?", ":", ""]


# ---- documents and planted pairs --------------------------------------------------------


def vocabulary(rng: random.Random, size: int = 4000) -> list[str]:
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choices(SYLLABLES, k=rng.randint(2, 4))))
    vocab = sorted(words)
    rng.shuffle(vocab)  # Zipf ranks in a random order, not alphabetical
    return vocab


def original_text(rng: random.Random, vocab: list[str], cum_weights: list[float]) -> str:
    words = rng.choices(vocab, cum_weights=cum_weights, k=rng.randint(40, 120))
    for j in range(0, len(words), rng.randint(8, 20)):
        words[j] = words[j].capitalize()
        if j:
            words[j - 1] += rng.choice(PUNCTUATION)
    return " ".join(words) + "."


def jaccard(a: set, b: set) -> float:
    if not a and not b:
        return 1.0
    common = len(a & b)
    return common / (len(a) + len(b) - common)


def quick_shingles(words: list[str]) -> set[tuple[str, ...]]:
    """Word 5-grams of the normalised words, as tuples: for the edit search only (the Jaccard
    recorded for a pair is always computed with ``pipeline.stages.dedup.shingles``)."""
    w = normalize_text(" ".join(words)).split()
    return set(zip(w, w[1:], w[2:], w[3:], w[4:], strict=False))


def edited(rng: random.Random, words: list[str], vocab: list[str]) -> list[str]:
    """One word substituted (by a different one), inserted or deleted at a random position."""
    out = list(words)
    op = rng.random()
    if op < 0.6 or len(out) < 10:
        i = rng.randrange(len(out))
        word = rng.choice(vocab)
        while word == out[i].lower():
            word = rng.choice(vocab)
        out[i] = word
    elif op < 0.8:
        out.insert(rng.randrange(len(out) + 1), rng.choice(vocab))
    else:
        del out[rng.randrange(len(out))]
    return out


def near_copy(rng: random.Random, text: str, vocab: list[str]) -> tuple[str, float]:
    """An edited copy of ``text`` and its true Jaccard: at or just above a random target,
    unless even the one forced edit takes it below (short texts)."""
    target = rng.uniform(TARGET_LOW, TARGET_HIGH)
    words = text.split()
    source = quick_shingles(words)
    # The first edit is forced: the best of four tries, preferring one that meets the target.
    tries = []
    for _ in range(4):
        candidate = edited(rng, words, vocab)
        tries.append((jaccard(source, quick_shingles(candidate)), candidate))
    meeting = [t for t in tries if t[0] >= target]
    _, words = meeting[0] if meeting else max(tries, key=lambda t: t[0])
    # Then edits are added while the Jaccard stays at or above the target (4 misses end it).
    failures = 0
    while failures < 4:
        candidate = edited(rng, words, vocab)
        if jaccard(source, quick_shingles(candidate)) >= target:
            words, failures = candidate, 0
        else:
            failures += 1
    copy = " ".join(words)
    return copy, jaccard(shingles(text, SHINGLE), shingles(copy, SHINGLE))


def exact_copy(rng: random.Random, text: str) -> str:
    """The same normalised text: verbatim, lower-cased, upper-cased or re-punctuated."""
    variant = rng.randrange(4)
    if variant == 0:
        return text
    if variant == 1:
        return text.lower()
    if variant == 2:
        return text.upper()
    return text.rstrip(".") + "!!"


def corpus(size: int, seed: int) -> tuple[list[dict], list[tuple[str, str, float, str]]]:
    """``size`` records and the planted pairs (source id, copy id, true Jaccard, kind)."""
    rng = random.Random(f"dedup-scale-{seed}-{size}")
    vocab = vocabulary(rng)
    cum_weights, total = [], 0.0
    for rank in range(len(vocab)):
        total += 1.0 / (rank + 1)
        cum_weights.append(total)
    n_near = round(size * NEAR_SHARE)
    n_exact = round(size * EXACT_SHARE)
    n_orig = size - n_near - n_exact
    texts = [original_text(rng, vocab, cum_weights) for _ in range(n_orig)]
    planted: list[tuple[int, int, float, str]] = []  # indices into texts
    for source in rng.sample(range(n_orig), n_near):
        copy, sim = near_copy(rng, texts[source], vocab)
        planted.append((source, len(texts), sim, "near"))
        texts.append(copy)
    for source in rng.sample(range(len(texts)), n_exact):
        planted.append((source, len(texts), 1.0, "exact"))
        texts.append(exact_copy(rng, texts[source]))
    order = list(range(size))
    rng.shuffle(order)  # ids in a random order: a copy's id may sort before its source's
    ids = [f"doc-{order[i]:07d}" for i in range(size)]
    docs = [{"id": ids[i], "statement": texts[i]} for i in range(size)]
    return docs, [(ids[a], ids[b], sim, kind) for a, b, sim, kind in planted]


# ---- the stage ----------------------------------------------------------------------------


def _row(record: dict, outcome: str) -> str:
    return json.dumps(
        [
            record.get("id"),
            record.get("dedup_cluster"),
            record.get("reason", outcome) if outcome != "kept" else "kept",
            record.get("detail", ""),
        ]
    )


def run_stage(docs: list[dict], threshold: float, workdir: str, label: str) -> tuple[float, dict]:
    """Runs ``Dedup`` over ``docs``; returns (seconds, {id: (cluster, reason, detail)})."""
    prefix = os.path.join(workdir, f"{label}-{time.time_ns()}")
    started = time.perf_counter()
    with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as p:
        out = (
            p
            | "Create" >> beam.Create(docs, reshuffle=False)
            | Dedup(DedupConfig(threshold=threshold))
        )
        rows = [
            out.kept | "RowKept" >> beam.Map(_row, "kept"),
            out.dropped | "RowDropped" >> beam.Map(_row, "dropped"),
            out.errors | "RowErrors" >> beam.Map(_row, "error"),
        ]
        _ = (
            rows
            | "FlattenRows" >> beam.Flatten()
            | "Write" >> beam.io.WriteToText(prefix, num_shards=1, shard_name_template="")
        )
    seconds = time.perf_counter() - started
    results: dict = {}
    duplicated = 0
    with open(prefix) as fh:
        for line in fh:
            rid, cluster, reason, detail = json.loads(line)
            duplicated += rid in results
            results[rid] = (cluster, reason, detail)
    if duplicated:
        raise RuntimeError(f"{duplicated} ids came out of the stage more than once")
    return seconds, results


# ---- evaluation ---------------------------------------------------------------------------


def evaluate(docs, planted, results, threshold: float) -> dict:
    text = {d["id"]: d["statement"] for d in docs}
    cache: dict[str, set[bytes]] = {}

    def true_jaccard(a: str, b: str) -> float:
        for rid in (a, b):
            if rid not in cache:
                cache[rid] = shingles(text[rid], SHINGLE)
        return jaccard(cache[a], cache[b])

    missing = sum(rid not in results for rid in text)
    errors = sum(r[1] == "error" for r in results.values())
    cluster = {rid: r[0] for rid, r in results.items() if r[1] != "error"}

    # Recall over the planted pairs, split by true Jaccard.
    counts = defaultdict(int)
    for a, b, sim, kind in planted:
        same = a in cluster and cluster[a] == cluster[b]
        if sim < threshold:
            counts["below"] += 1
            counts["below_merged"] += same
            continue
        band = "lo" if sim < threshold + BAND else "hi"
        counts[f"pos_{band}"] += 1
        counts[f"hit_{band}"] += same
        counts[f"pos_{kind}"] += 1
        counts[f"hit_{kind}"] += same

    # Precision over all pairs that share a cluster.
    members = defaultdict(list)
    for rid, root in cluster.items():
        members[root].append(rid)
    rng = random.Random(0)
    pairs = good = 0.0
    largest = 0
    for group in members.values():
        k = len(group)
        largest = max(largest, k)
        if k < 2:
            continue
        total = k * (k - 1) // 2
        if total <= MAX_CLUSTER_PAIRS:
            sample = list(combinations(sorted(group), 2))
        else:
            sample = [tuple(rng.sample(group, 2)) for _ in range(MAX_CLUSTER_PAIRS)]
        ok = sum(true_jaccard(a, b) >= threshold for a, b in sample)
        pairs += total
        good += ok * total / len(sample)

    # For reference: dropped records against the record their detail names.
    dropped = dropped_ok = 0
    for rid, (_, reason, detail) in results.items():
        if reason in ("exact_duplicate", "near_duplicate"):
            dropped += 1
            dropped_ok += detail in text and true_jaccard(rid, detail) >= threshold

    return {
        **counts,
        "docs": len(docs),
        "missing": missing,
        "errors": errors,
        "clusters_multi": sum(len(g) > 1 for g in members.values()),
        "largest_cluster": largest,
        "pairs": pairs,
        "good_pairs": good,
        "dropped": dropped,
        "dropped_ok": dropped_ok,
    }


def one(size: int, threshold: float, seed: int) -> dict:
    """One size in this process: generate, warm up, time the stage, measure, evaluate."""
    t0 = time.perf_counter()
    docs, planted = corpus(size, seed)
    generate_s = time.perf_counter() - t0
    workdir = tempfile.mkdtemp(prefix="dedup-scale-")
    try:
        warm_docs, _ = corpus(WARM_UP_DOCS, seed + 1)
        warm_s, _ = run_stage(warm_docs, threshold, workdir, "warm")
        base_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        seconds, results = run_stage(docs, threshold, workdir, "run")
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    t1 = time.perf_counter()
    metrics = evaluate(docs, planted, results, threshold)
    return {
        **metrics,
        "size": size,
        "seconds": seconds,
        "peak_mb": peak_mb,
        "base_mb": base_mb,
        "warm_s": warm_s,
        "generate_s": generate_s,
        "evaluate_s": time.perf_counter() - t1,
        "planted_sims": sorted(s for _, _, s, kind in planted if kind == "near"),
    }


# ---- driver -------------------------------------------------------------------------------


def short(size: int) -> str:
    return f"{size // 1000}k" if size % 1000 == 0 else str(size)


def ratio(num: float, den: float) -> float:
    return num / den if den else float("nan")


def run_subprocess(size: int, threshold: float, seed: int) -> dict:
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--one", str(size), "--threshold", str(threshold), "--seed", str(seed),
    ]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, cwd=os.getcwd())
    for line in proc.stdout.splitlines():
        if line.startswith("ONE "):
            return json.loads(line[4:])
    sys.stderr.write(proc.stderr[-5000:])
    raise RuntimeError(f"--one {size} failed with exit code {proc.returncode}")


def histogram(sims: list[float], threshold: float) -> str:
    edges = [0.70, threshold - BAND, threshold, threshold + BAND, 0.90, 0.95, 1.0]
    edges = sorted(set(edges))
    parts = []
    for lo, hi in zip(edges, edges[1:], strict=False):
        n = sum(lo <= s < hi for s in sims)
        parts.append(f"[{lo:.2f},{hi:.2f}):{n}")
    parts.append(f"1.0:{sum(s >= 1.0 for s in sims)}")
    return " ".join(parts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,30000,100000")
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.one:
        print("ONE " + json.dumps(one(args.one, args.threshold, args.seed)), flush=True)
        return 0

    t = args.threshold
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    started = time.perf_counter()
    runs = []
    for size in sizes:
        r = run_subprocess(size, t, args.seed)
        runs.append(r)
        recall = ratio(
            r.get("hit_lo", 0) + r.get("hit_hi", 0), r.get("pos_lo", 0) + r.get("pos_hi", 0)
        )
        print(
            f"{size} docs: {r['seconds']:.1f} s ({size / r['seconds']:.0f} docs/s; warm-up "
            f"{r['warm_s']:.1f} s, generation {r['generate_s']:.1f} s, evaluation "
            f"{r['evaluate_s']:.1f} s), peak RSS {r['peak_mb']:.0f} MB (base {r['base_mb']:.0f})"
            f"; recall {recall:.4f} = {r.get('hit_lo', 0) + r.get('hit_hi', 0)}/"
            f"{r.get('pos_lo', 0) + r.get('pos_hi', 0)} "
            f"([{t:.2f},{t + BAND:.2f}) {r.get('hit_lo', 0)}/{r.get('pos_lo', 0)}, "
            f">={t + BAND:.2f} {r.get('hit_hi', 0)}/{r.get('pos_hi', 0)}; "
            f"exact {r.get('hit_exact', 0)}/{r.get('pos_exact', 0)}), "
            f"planted below {t:.2f} merged {r.get('below_merged', 0)}/{r.get('below', 0)}; "
            f"pair precision {ratio(r['good_pairs'], r['pairs']):.4f} = "
            f"{r['good_pairs']:.0f}/{r['pairs']:.0f}, dropped-vs-detail precision "
            f"{ratio(r['dropped_ok'], r['dropped']):.4f} = {r['dropped_ok']}/{r['dropped']}; "
            f"{r['clusters_multi']} clusters >1, largest {r['largest_cluster']}; "
            f"missing {r['missing']}, errors {r['errors']}",
            flush=True,
        )
        print(
            f"  planted near-duplicate true Jaccard: {histogram(r['planted_sims'], t)}", flush=True
        )

    total = {
        key: sum(r.get(key, 0) for r in runs)
        for key in ("hit_lo", "pos_lo", "hit_hi", "pos_hi", "good_pairs", "pairs")
    }
    print(f"total {time.perf_counter() - started:.0f} s")
    for r in runs:
        print(f"RESULT dedup_seconds_{short(r['size'])} {r['seconds']:.2f}")
    big, small = max(runs, key=lambda r: r["size"]), min(runs, key=lambda r: r["size"])
    print(f"RESULT dedup_peak_mb_{short(big['size'])} {big['peak_mb']:.0f}")
    print(
        f"RESULT dedup_{short(big['size'])}_over_{short(small['size'])} "
        f"{ratio(big['seconds'], small['seconds']):.2f}"
    )
    hits, positives = total["hit_lo"] + total["hit_hi"], total["pos_lo"] + total["pos_hi"]
    print(f"RESULT dedup_recall {ratio(hits, positives):.4f}")
    print(
        f"RESULT dedup_recall_{t:.2f}_{t + BAND:.2f} {ratio(total['hit_lo'], total['pos_lo']):.4f}"
    )
    print(f"RESULT dedup_recall_ge_{t + BAND:.2f} {ratio(total['hit_hi'], total['pos_hi']):.4f}")
    print(f"RESULT dedup_precision {ratio(total['good_pairs'], total['pairs']):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
