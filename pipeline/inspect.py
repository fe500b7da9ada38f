"""``synthgen inspect OUT``: the funnel, shard statistics and a few sample rows, via pandas."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd


def _read(out: Path, table: str) -> pd.DataFrame:
    files = sorted((out / table).glob("*.parquet"))
    if not files:
        return pd.DataFrame()
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def inspect_output(output: str, samples: int = 3) -> str:
    out = Path(output)
    manifest_path = out / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{out} has no manifest.json: not a finished synthgen output")
    manifest = json.loads(manifest_path.read_text())
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
                row["problem"][:400],
                ">>>",
                row["solution"][:400],
            ]
    if not rejected.empty:
        lines += ["", "rejected examples:"]
        for _, row in rejected.groupby(["stage", "reason"]).head(1).iterrows():
            lines.append(f"  {row['id']:<36} {row['stage']}/{row['reason']}: {row['detail'][:80]}")
    return "\n".join(lines)
