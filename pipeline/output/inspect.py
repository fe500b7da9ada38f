"""``synthgen inspect OUT``: the funnel, shard statistics and a few sample rows, via pandas.

``inspect_output(OUT)`` returns the summary. Asked for ``rejected`` or ``sample``, it returns
those views instead (both when both are asked, rejected rows first):

- ``rejected="near_duplicate"`` (any stage) or ``"dedup/near_duplicate"`` (that stage only):
  how many rejected rows have that reason, and the first ``samples`` of them by id, with their
  detail, problem and raw teacher text.
- ``sample=N``: N kept samples drawn at random with ``seed``, shown in id order; the same
  output and seed always give the same samples.

Raises FileNotFoundError when OUT has no manifest.json (not a finished output) and ValueError
for a reason no rejected row of OUT has (the message lists those it has) or a negative count.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

SUMMARY_CHARS = 400
PROBLEM_CHARS = 1500
SOLUTION_CHARS = 2500
RAW_CHARS = 1000
DETAIL_CHARS = 300


def _read(out: Path, table: str) -> pd.DataFrame:
    files = sorted((out / table).glob("*.parquet"))
    if not files:
        return pd.DataFrame()
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def clip(text, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how many were cut; "" for a missing value."""
    if text is None or (not isinstance(text, str) and pd.isna(text)):
        return ""
    text = str(text)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text) - limit} more chars]"


def _block(label: str, text, limit: int) -> list[str]:
    shown = clip(text, limit)
    return [f"{label}:", textwrap.indent(shown, "  ")] if shown else [f"{label}: (none)"]


def _reasons(rejected: pd.DataFrame) -> str:
    """``"dedup/exact_duplicate 3, generate/truncated 2"``."""
    if rejected.empty:
        return "none (no rejected rows)"
    counts = rejected.groupby(["stage", "reason"]).size()
    return ", ".join(f"{stage}/{reason} {n}" for (stage, reason), n in counts.items())


def select_rejected(rejected: pd.DataFrame, reason: str) -> pd.DataFrame:
    """The rows with ``reason`` (``"reason"`` or ``"stage/reason"``), sorted by id; ValueError
    when there are none."""
    matched = rejected.iloc[0:0]
    if not rejected.empty:
        stage, _, code = reason.rpartition("/")
        hit = rejected["reason"] == code
        if stage:
            hit &= rejected["stage"] == stage
        matched = rejected[hit]
    if matched.empty:
        raise ValueError(
            f"no rejected row has reason {reason!r}; reasons present: {_reasons(rejected)}"
        )
    return matched.sort_values("id", kind="stable")


def pick_samples(data: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` kept rows (all, when there are fewer) drawn with ``seed``, in id order. Drawn from
    the rows sorted by id, so shard order and reader do not change the choice."""
    ordered = data.sort_values("id", kind="stable").reset_index(drop=True)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(ordered), size=min(n, len(ordered)), replace=False)
    return ordered.iloc[np.sort(chosen)]


def rejected_view(rejected: pd.DataFrame, reason: str, limit: int) -> list[str]:
    matched = select_rejected(rejected, reason)
    lines = [
        f"rejected {reason!r}: {len(matched)} rows ({_reasons(matched)}), "
        f"showing {min(limit, len(matched))}"
    ]
    for _, row in matched.head(limit).iterrows():
        lines += ["", f"--- {row['id']} ({row['stage']}/{row['reason']})"]
        lines += [f"detail: {clip(row['detail'], DETAIL_CHARS)}"]
        lines += _block("problem", row.get("problem"), PROBLEM_CHARS)
        if clip(row.get("raw"), 1):
            lines += _block("raw teacher text", row["raw"], RAW_CHARS)
    return lines


def samples_view(data: pd.DataFrame, n: int, seed: int) -> list[str]:
    chosen = pick_samples(data, n, seed) if not data.empty else data
    lines = [f"{len(chosen)} of {len(data)} kept samples, drawn with seed {seed}"]
    for _, row in chosen.iterrows():
        lines += [
            "",
            f"=== {row['id']} ({row['domain']}/{row['topic']}/{row['difficulty']}): "
            f"{row['num_tokens']} tokens, pass rate {row['pass_rate']:.2f}, verdict "
            f"{row['verdict']}, language {row['language']} ({row['language_prob']:.2f})",
        ]
        lines += _block("problem", row["problem"], PROBLEM_CHARS)
        if clip(row.get("reasoning"), 1):
            lines += _block("reasoning", row["reasoning"], SOLUTION_CHARS)
        lines += _block("solution", row["solution"], SOLUTION_CHARS)
        if clip(row.get("answer"), 1):
            lines.append(f"answer: {clip(row['answer'], DETAIL_CHARS)}")
        if len(row["audit_flags"]):
            lines.append(f"audit flags: {', '.join(row['audit_flags'])}")
    return lines


def summary(out: Path, manifest: dict, samples: int) -> list[str]:
    data, rejected = _read(out, "data"), _read(out, "rejected")
    funnel = manifest["funnel"]
    lines = [
        f"run {manifest['run_id']} ({manifest['elapsed_s']:.1f} s, "
        f"config {manifest['config_hash']})",
        "",
        f"funnel: {funnel['requested']} requested -> {funnel['kept']} kept, "
        f"{funnel['rejected']} rejected (reconciled: {funnel['reconciled']})",
    ]
    for reason, count in sorted(funnel["rejected_by_reason"].items(), key=lambda kv: -kv[1]):
        lines.append(f"  {reason:<40} {count:>7}")
    used = manifest["teacher"]["total"]
    lines += [
        "",
        f"teacher: {used.get('requests', 0)} requests, {used.get('prompt_tokens', 0)} prompt + "
        f"{used.get('completion_tokens', 0)} completion tokens, {used.get('retries', 0)} retries",
        "",
        "shards:",
    ]
    for table, shards in manifest["shards"].items():
        rows = [s["rows"] for s in shards]
        if rows:
            lines.append(
                f"  {table:<9} {len(rows)} files, rows min/max {min(rows)}/{max(rows)}, "
                f"{sum(s['bytes'] for s in shards) / 1e6:.2f} MB"
            )
    if not data.empty:
        lines += [
            "",
            "kept by domain:",
            data.groupby("domain")
            .agg(
                samples=("id", "size"),
                mean_tokens=("num_tokens", "mean"),
                mean_pass_rate=("pass_rate", "mean"),
            )
            .round(3)
            .to_string(),
        ]
        for _, row in data.sort_values("id").head(samples).iterrows():
            lines += [
                "",
                f"--- {row['id']} ({row['num_tokens']} tokens, pass rate {row['pass_rate']:.2f},"
                f" {row['language']} {row['language_prob']:.2f})",
                row["problem"][:SUMMARY_CHARS],
                ">>>",
                row["solution"][:SUMMARY_CHARS],
            ]
    if not rejected.empty:
        lines += ["", "rejected examples:"]
        for _, row in rejected.groupby(["stage", "reason"]).head(1).iterrows():
            lines.append(f"  {row['id']:<36} {row['stage']}/{row['reason']}: {row['detail'][:80]}")
    return lines


def inspect_output(
    output: str,
    samples: int = 3,
    rejected: str | None = None,
    sample: int | None = None,
    *,
    seed: int = 0,
) -> str:
    if samples < 0 or (sample is not None and sample < 0):
        raise ValueError(f"sample counts must be >= 0, got samples={samples} sample={sample}")
    out = Path(output)
    manifest_path = out / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{out} has no manifest.json: not a finished synthgen output")
    manifest = json.loads(manifest_path.read_text())
    if rejected is None and sample is None:
        return "\n".join(summary(out, manifest, samples))
    lines: list[str] = []
    if rejected is not None:
        lines += rejected_view(_read(out, "rejected"), rejected, samples)
    if sample is not None:
        if lines:
            lines.append("")
        lines += samples_view(_read(out, "data"), sample, seed)
    return "\n".join(lines)
