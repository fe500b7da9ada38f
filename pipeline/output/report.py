"""``synthgen report OUT``: one self-contained HTML page for deciding whether a run was worth
its cost.

``OUT/report.html`` holds a headline table, seven plots and sample kept and rejected rows. The
headline numbers are read from ``manifest.json`` only, one ``<td id=...>`` per number
(``HEADLINE`` lists the ids), so a reader or a test can compare them with the manifest; the
plots and samples are read from the ``data/``, ``rejected/`` and ``attempts/`` tables. The page
needs nothing else: the plots are PNGs inlined as ``data:`` URIs, the CSS is inline and there is
no script and no external URL. Teacher text is untrusted and always HTML-escaped. A plot
without data is replaced by a "no data" image and a note, so every plot is always there. The
page is written to a temporary name in OUT and renamed into place: a half-written report never
exists.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pipeline import records
from pipeline.run import REPORT

STAGE_ORDER = (
    records.GENERATE,
    records.REFERENCE,
    records.DECONTAM,
    records.LANGUAGE,
    records.DEDUP,
    records.ATTEMPTS,
    records.VERIFY,
    records.SELECT,
    records.TOKENS,
)
DUPLICATE_REASONS = (records.EXACT_DUPLICATE, records.NEAR_DUPLICATE)
# (cell id, label, path into the manifest).
HEADLINE = (
    ("requested", "problems requested", ("funnel", "requested")),
    ("kept", "samples kept", ("funnel", "kept")),
    ("rejected", "problems rejected", ("funnel", "rejected")),
    ("reconciled", "funnel reconciled", ("funnel", "reconciled")),
    ("tokens_data", "tokens in data/", ("tokens", "data")),
    ("teacher_requests", "teacher requests sent", ("teacher", "total", "requests")),
    ("prompt_tokens", "teacher prompt tokens", ("teacher", "total", "prompt_tokens")),
    ("completion_tokens", "teacher completion tokens", ("teacher", "total", "completion_tokens")),
    ("cost_usd", "teacher cost (USD)", ("teacher", "cost_usd")),
    ("cache_hit_rate", "teacher cache hit rate", ("teacher", "cache_hit_rate")),
    ("elapsed_s", "elapsed (s)", ("elapsed_s",)),
    ("tokenizer", "tokenizer", ("tokenizer", "name")),
    (
        "kept_with_reasoning",
        "kept samples with the teacher's thinking",
        ("reasoning", "data", "rows"),
    ),
    ("reasoning_mode", "thinking in the tokens", ("tokenizer", "reasoning", "mode")),
)
DATA_COLUMNS = ("id", "domain", "topic", "difficulty", "num_tokens", "pass_rate", "attempts")
DATA_COLUMNS += ("language", "dedup_cluster", "problem", "solution")
REJECTED_COLUMNS = ("id", "domain", "stage", "reason", "detail", "language", "problem", "raw")
ATTEMPT_COLUMNS = ("problem_id", "attempt", "verdict")
TEXT_COLUMNS = ("problem", "solution", "detail", "raw")
CLIP = 300  # characters of teacher text shown per cell
SAMPLE_KEPT, SAMPLE_PER_REASON = 10, 2
DPI = 100
KEPT_COLOR, REJECTED_COLOR, NEUTRAL_COLOR = "#2e7d32", "#c62828", "#607d8b"
VERDICT_COLORS = {
    records.PASS: KEPT_COLOR,
    records.FAIL_TESTS: "#e53935",
    records.FAIL_ANSWER: "#fb8c00",
    records.FAIL_TIMEOUT: "#8e24aa",
    records.FAIL_MEMORY: "#6d4c41",
    records.FAIL_CRASH: "#3949ab",
    records.SUSPICIOUS: "#fdd835",
    records.INFRA_ERROR: "#000000",
}


# ---- reading ----------------------------------------------------------------------------


def _read(out: Path, table: str, columns: tuple[str, ...]) -> pd.DataFrame:
    """The ``columns`` of every shard of ``table`` (missing ones as None), teacher text clipped
    shard by shard so a large output is never held in memory whole."""
    frames = []
    for path in sorted((out / table).glob("part-*.parquet")):
        present = [c for c in columns if c in pq.read_schema(path).names]
        frame = pd.read_parquet(path, columns=present)
        for column in set(TEXT_COLUMNS) & set(present):
            frame[column] = frame[column].str.slice(0, CLIP + 1)
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    for column in columns:
        if column not in frame:
            frame[column] = pd.Series([None] * len(frame), dtype=object)
    return frame[list(columns)]


def _get(manifest: dict, path: tuple[str, ...]):
    value = manifest
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


# ---- pure summaries ---------------------------------------------------------------------


def cluster_sizes(data: pd.DataFrame, rejected: pd.DataFrame) -> dict[int, int]:
    """{cluster size: number of clusters} of this run's dedup clusters.

    A cluster is its survivor plus the problems dropped as its exact or near duplicates. Kept
    rows name their cluster in ``dedup_cluster``; a dropped duplicate names the id it matched
    in ``detail``, which may itself be a dropped duplicate (an exact copy of a near duplicate),
    so ``detail`` links are followed to the root. A survivor rejected by a later stage still
    counts as its cluster's member.
    """
    dups = rejected[rejected["reason"].isin(DUPLICATE_REASONS)]
    parent = dict(zip(dups["id"], dups["detail"], strict=True))

    def root(node: str) -> str:
        seen = set()
        while node in parent and node not in seen:
            seen.add(node)
            node = parent[node]
        return node

    members = defaultdict(set)
    for row_id, cluster in zip(data["id"], data["dedup_cluster"], strict=True):
        members[root(cluster if isinstance(cluster, str) else row_id)].add(row_id)
    for row_id in parent:
        members[root(row_id)].update((row_id, root(row_id)))
    return dict(sorted(Counter(len(m) for m in members.values()).items()))


def _stage_rank(stage_reason: str) -> tuple[int, str]:
    stage = stage_reason.split("/", 1)[0]
    return (STAGE_ORDER.index(stage) if stage in STAGE_ORDER else len(STAGE_ORDER), stage_reason)


def _share(part, whole) -> str:
    return f"{100 * part / whole:.1f} %" if isinstance(part, int | float) and whole else ""


def _fmt(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def headline_notes(manifest: dict) -> dict[str, str]:
    """Derived figures shown beside the headline numbers: shares, per-sample token and cost."""
    funnel, teacher = manifest.get("funnel", {}), manifest.get("teacher", {})
    requested, kept = funnel.get("requested"), funnel.get("kept")
    tokens, cost = _get(manifest, ("tokens", "data")), teacher.get("cost_usd")
    total = teacher.get("total", {})
    notes = {
        "kept": f"{_share(kept, requested)} of requested",
        "rejected": f"{_share(funnel.get('rejected'), requested)} of requested",
        "reconciled": "requested = kept + rejected" if funnel.get("reconciled") else "",
        "teacher_requests": f"plus {total.get('cache_hits', 0)} answered from the cache, "
        f"{total.get('retries', 0)} retries",
        "cache_hit_rate": _share(teacher.get("cache_hit_rate"), 1),
    }
    if kept and tokens is not None:
        notes["tokens_data"] = f"{tokens / kept:.1f} per kept sample"
    if kept and cost is not None:
        notes["cost_usd"] = f"${cost / kept:.6f} per kept sample"
        if tokens:
            notes["cost_usd"] += f", ${1e6 * cost / tokens:.2f} per 1M kept tokens"
    return notes


def consistency_warnings(manifest: dict, data: pd.DataFrame, rejected: pd.DataFrame) -> list[str]:
    """Where the tables disagree with the manifest, or the run stopped short."""
    funnel = manifest.get("funnel", {})
    checks = [
        ("funnel.kept", funnel.get("kept"), "rows in data/", len(data)),
        ("funnel.rejected", funnel.get("rejected"), "rows in rejected/", len(rejected)),
        (
            "tokens.data",
            _get(manifest, ("tokens", "data")),
            "num_tokens summed over data/",
            int(pd.to_numeric(data["num_tokens"]).sum()),
        ),
    ]
    warnings = [
        f"manifest {name} = {expected} but {what} = {actual}"
        for name, expected, what, actual in checks
        if expected is not None and expected != actual
    ]
    if funnel.get("reconciled") is False:
        warnings.append("the funnel does not reconcile: requested != kept + rejected")
    if _get(manifest, ("teacher", "budget", "exhausted")):
        warnings.append("a teacher budget cap was reached: problems were dropped unanswered")
    return warnings


# ---- figures: each returns a Figure, or a string saying why there is no data ------------


def _figure(width: float, height: float, cols: int = 1) -> tuple[Figure, list]:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    return fig, list(np.atleast_1d(fig.subplots(1, cols)))


def _barh(ax, labels, values, colors, total=None) -> None:
    """Horizontal bars, first label on top, each bar labelled with its count (and share)."""
    y = np.arange(len(labels))
    ax.barh(y, values, color=colors)
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    top = max(values, default=0) or 1
    for yi, value in zip(y, values, strict=True):
        text = f"{value:g}" + (f" ({_share(value, total)})" if total else "")
        ax.text(value + top * 0.01, yi, text, va="center", fontsize=9)
    ax.set_xlim(0, top * 1.25)
    ax.spines[["top", "right"]].set_visible(False)


def funnel_figure(manifest: dict) -> Figure | str:
    funnel = manifest.get("funnel", {})
    if not funnel.get("requested"):
        return "the manifest has no requested problems"
    by_reason = sorted(
        funnel.get("rejected_by_reason", {}).items(), key=lambda kv: _stage_rank(kv[0])
    )
    labels = ["requested", "kept"] + [f"rejected: {k.replace('/', ' / ')}" for k, _ in by_reason]
    values = [funnel["requested"], funnel.get("kept", 0)] + [v for _, v in by_reason]
    colors = [NEUTRAL_COLOR, KEPT_COLOR] + [REJECTED_COLOR] * len(by_reason)
    fig, (ax,) = _figure(10, 1.2 + 0.32 * len(labels))
    _barh(ax, labels, values, colors, total=funnel["requested"])
    ax.set_xlabel("problems")
    return fig


def token_figure(data: pd.DataFrame, max_length: int | None) -> Figure | str:
    tokens = pd.to_numeric(data["num_tokens"]).dropna()
    if tokens.empty:
        return "no kept samples"
    fig, (ax,) = _figure(10, 3.6)
    domains = sorted(data["domain"].fillna("?").unique())
    series = [tokens[data["domain"].fillna("?") == d] for d in domains]
    ax.hist(series, bins=min(40, max(5, tokens.nunique())), stacked=True, label=domains)
    if max_length and max_length <= 1.5 * tokens.max():
        ax.axvline(max_length, color=REJECTED_COLOR, linestyle="--", label="tokens.max_length")
    ax.set_title(
        f"{len(tokens)} kept samples: median {tokens.median():g}, p95 {tokens.quantile(0.95):g},"
        f" max {tokens.max():g} tokens (max_length {max_length})",
        fontsize=10,
    )
    ax.set_xlabel("tokens per sample (prompt + solution, chat template)")
    ax.set_ylabel("samples")
    ax.legend(frameon=False)
    return fig


def pass_rate_figure(data: pd.DataFrame, attempts: pd.DataFrame) -> Figure | str:
    rates = pd.to_numeric(data["pass_rate"]).dropna()
    if rates.empty and attempts.empty:
        return "no kept samples and no attempts"
    fig, (left, right) = _figure(10, 3.8, cols=2)
    if rates.empty:
        left.text(0.5, 0.5, "no kept samples", ha="center", va="center", transform=left.transAxes)
    else:
        n = pd.to_numeric(data["attempts"]).max()
        n = int(n) if n > 0 else 1  # NaN when no row says how many attempts were asked for
        left.hist(rates, bins=(np.arange(n + 2) - 0.5) / n, color=KEPT_COLOR, rwidth=0.85)
        left.set_xlim(-0.5 / n, 1 + 0.5 / n)
        if n <= 12:
            left.set_xticks(np.arange(n + 1) / n, [f"{k}/{n}" for k in range(n + 1)])
        left.set_title(f"kept samples by pass rate (mean {rates.mean():.2f})", fontsize=10)
    left.set_xlabel("pass rate = passing attempts / attempts")
    left.set_ylabel("samples")
    if attempts.empty:
        right.text(0.5, 0.5, "no attempts", ha="center", va="center", transform=right.transAxes)
    else:
        table = attempts.groupby(["attempt", "verdict"]).size().unstack(fill_value=0)
        table = table[sorted(table.columns, key=lambda v: (v != records.PASS, v))]
        bottom = np.zeros(len(table))
        for verdict in table.columns:
            color = VERDICT_COLORS.get(verdict, "#9e9e9e")
            right.bar(table.index, table[verdict], bottom=bottom, label=verdict, color=color)
            bottom += table[verdict].to_numpy()
        right.set_xticks(table.index)
        right.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1, 1))
        right.set_title(f"verdicts of all {len(attempts)} attempts", fontsize=10)
    right.set_xlabel("attempt index")
    right.set_ylabel("attempts")
    return fig


def language_figure(data: pd.DataFrame, rejected: pd.DataFrame) -> Figure | str:
    if data.empty and rejected.empty:
        return "no kept or rejected rows"
    unseen = "not detected (rejected earlier)"
    counts = pd.DataFrame(
        {
            "kept": data["language"].fillna(unseen).value_counts(),
            "rejected": rejected["language"].fillna(unseen).value_counts(),
        }
    ).fillna(0)
    counts = counts.loc[counts.sum(axis=1).sort_values(ascending=False).index]
    fig, (ax,) = _figure(10, 1.2 + 0.35 * len(counts))
    y = np.arange(len(counts))
    ax.barh(y, counts["kept"], color=KEPT_COLOR, label="kept")
    ax.barh(y, counts["rejected"], left=counts["kept"], color=REJECTED_COLOR, label="rejected")
    for yi, (kept, rej) in zip(y, counts.to_numpy(), strict=True):
        ax.text(kept + rej, yi, f" {kept:g} kept, {rej:g} rejected", va="center", fontsize=9)
    ax.set_yticks(y, counts.index)
    ax.invert_yaxis()
    ax.set_xlim(0, counts.sum(axis=1).max() * 1.35)
    ax.set_xlabel("problems")
    ax.legend(frameon=False, loc="lower right")
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def duplicate_figure(data: pd.DataFrame, rejected: pd.DataFrame) -> Figure | str:
    sizes = cluster_sizes(data, rejected)
    unique = sizes.pop(1, 0)
    if not sizes:
        return f"no exact or near duplicates dropped ({unique} kept samples, each unique)"
    fig, (ax,) = _figure(10, 3.2)
    x = np.arange(len(sizes))
    ax.bar(x, list(sizes.values()), color=REJECTED_COLOR, width=0.6)
    ax.set_xticks(x, [str(s) for s in sizes])
    for xi, n in zip(x, sizes.values(), strict=True):
        ax.text(xi, n, f"{n}", ha="center", va="bottom", fontsize=9)
    ax.set_ylim(0, max(sizes.values()) * 1.15)
    ax.set_xlabel("cluster size (survivor + its dropped exact / near duplicates)")
    ax.set_ylabel("clusters")
    ax.set_title(
        f"{sum((size - 1) * n for size, n in sizes.items())} duplicates dropped from "
        f"{sum(sizes.values())} clusters; {unique} kept samples had no duplicate",
        fontsize=10,
    )
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def teacher_figure(manifest: dict) -> Figure | str:
    by_stage = _get(manifest, ("teacher", "by_stage")) or {}
    if not by_stage:
        return "the manifest has no teacher usage by stage"
    stages = sorted(by_stage, key=lambda s: _stage_rank(s + "/"))

    def get(key: str) -> np.ndarray:
        return np.array([by_stage[s].get(key, 0) or 0 for s in stages], dtype=float)

    sent, hits, cost = get("requests"), get("cache_hits"), get("cost_micro_usd") / 1e6
    prompt, completion = get("prompt_tokens"), get("completion_tokens")
    panels = (
        (
            "teacher calls",
            [("sent", sent, NEUTRAL_COLOR), ("answered from cache", hits, KEPT_COLOR)],
            [
                f"{s:g} sent, {_share(h, s + h) or 'n/a'} cached"
                for s, h in zip(sent, hits, strict=True)
            ],
        ),
        (
            "tokens billed",
            [("prompt", prompt, "#1e88e5"), ("completion", completion, "#fb8c00")],
            [f"{p:g} + {c:g}" for p, c in zip(prompt, completion, strict=True)],
        ),
        ("cost (USD)", [("cost", cost, REJECTED_COLOR)], [f"${c:.4f}" for c in cost]),
    )
    fig, axes = _figure(10, 1.9 + 0.4 * len(stages), cols=3)
    y = np.arange(len(stages))
    for ax, (title, parts, labels) in zip(axes, panels, strict=True):
        left = np.zeros(len(stages))
        for label, values, color in parts:
            ax.barh(y, values, left=left, color=color, label=label, height=0.6)
            left += values
        for yi, end, text in zip(y, left, labels, strict=True):
            ax.text(end, yi, " " + text, va="center", fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_yticks(y, stages if ax is axes[0] else [""] * len(stages))
        ax.set_ylim(len(stages) - 0.5, -0.5)
        ax.set_xlim(0, (left.max() or 1) * 1.8)
        ax.tick_params(axis="x", labelsize=8)
        ax.spines[["top", "right"]].set_visible(False)
        if len(parts) > 1:
            ax.legend(
                fontsize=8, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2
            )
    if not cost.any():
        axes[2].set_xticks([])
        axes[2].text(
            0.5,
            0.5,
            "no cost recorded\n(no price for the model\nin teacher.prices?)",
            ha="center",
            va="center",
            fontsize=9,
            color="#555",
            transform=axes[2].transAxes,
        )
    fig.suptitle(
        f"total cost ${_get(manifest, ('teacher', 'cost_usd')) or 0:g}, cache hit rate "
        f"{_share(_get(manifest, ('teacher', 'cache_hit_rate')), 1) or 'n/a'}",
        fontsize=10,
    )
    return fig


def isolation_figure(manifest: dict) -> Figure | str:
    parts = [
        ("isolation level of attempts", _get(manifest, ("attempts", "isolation_levels")) or {}),
        ("judge mode of attempts", _get(manifest, ("attempts", "judge_modes")) or {}),
    ]
    if not any(counts for _, counts in parts):
        return "no attempts were checked"
    rows = max(len(counts) for _, counts in parts)
    fig, axes = _figure(10, 1.4 + 0.35 * rows, cols=2)
    for ax, (title, counts) in zip(axes, parts, strict=True):
        ordered = sorted(counts.items(), key=lambda kv: -kv[1])
        colors = [NEUTRAL_COLOR if k == "none" else KEPT_COLOR for k, _ in ordered]
        _barh(ax, [k for k, _ in ordered], [v for _, v in ordered], colors, sum(counts.values()))
        ax.set_title(title, fontsize=10)
        ax.set_xlabel('attempts ("none": not run in the sandbox)', fontsize=9)
    return fig


def _placeholder(message: str) -> Figure:
    fig = Figure(figsize=(10, 1.2), dpi=DPI)
    fig.text(0.5, 0.5, f"no data: {message}", ha="center", va="center", fontsize=12, color="#555")
    return fig


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buffer)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


# ---- HTML -------------------------------------------------------------------------------

CSS = """
body { font: 14px/1.45 system-ui, sans-serif; max-width: 1080px; margin: 24px auto;
       padding: 0 16px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 32px; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.text { font: 12px/1.35 ui-monospace, monospace; white-space: pre-wrap;
          word-break: break-word; max-width: 380px; }
img { max-width: 100%; height: auto; display: block; }
.meta { color: #666; } .warn { color: #b71c1c; font-weight: bold; } .nodata { color: #666; }
"""


def _esc(value) -> str:
    return html.escape(_fmt(value))


def _clip(value) -> str:
    text = value if isinstance(value, str) else _fmt(value)
    return text if len(text) <= CLIP else text[:CLIP] + "…"


def _table(frame: pd.DataFrame, text_columns=()) -> str:
    if frame.empty:
        return '<p class="nodata">no rows</p>'
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        cells = []
        for column, value in zip(frame.columns, row, strict=True):
            if column in text_columns:
                cells.append(f'<td class="text">{html.escape(_clip(value))}</td>')
            elif isinstance(value, int | float | np.number):
                cells.append(f'<td class="num">{_esc(round(value, 3))}</td>')
            else:
                cells.append(f"<td>{_esc(value)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _headline_table(manifest: dict) -> str:
    notes = headline_notes(manifest)
    rows = [
        f'<tr><th>{html.escape(label)}</th><td class="num" id="{key}">'
        f"{_esc(_get(manifest, path))}</td><td>{html.escape(notes.get(key, ''))}</td></tr>"
        for key, label, path in HEADLINE
    ]
    return "<table>" + "".join(rows) + "</table>"


def _plot_section(key: str, title: str, made: Figure | str) -> str:
    note = ""
    if isinstance(made, str):
        note = f'<p class="nodata">no data: {html.escape(made)}</p>'
        made = _placeholder(made)
    alt = title if not note else f"{title}: no data"
    return (
        f'<section id="section-{key}"><h2>{html.escape(title)}</h2>{note}'
        f'<img class="plot" id="plot-{key}" alt="{html.escape(alt)}" src="{_png(made)}"></section>'
    )


def sample_kept(data: pd.DataFrame) -> pd.DataFrame:
    """``SAMPLE_KEPT`` kept rows spread evenly over the ids (so over domains and topics)."""
    kept = data.sort_values("id", kind="stable")
    if len(kept) > SAMPLE_KEPT:
        kept = kept.iloc[np.linspace(0, len(kept) - 1, SAMPLE_KEPT).astype(int)]
    return kept[["id", "domain", "num_tokens", "pass_rate", "problem", "solution"]]


def sample_rejected(rejected: pd.DataFrame) -> pd.DataFrame:
    """The first ``SAMPLE_PER_REASON`` rows (by id) of every stage / reason, in stage order; a
    problem rejected before it was parsed shows the teacher's raw answer instead."""
    ranks = [
        _stage_rank(f"{s}/{r}") for s, r in zip(rejected["stage"], rejected["reason"], strict=True)
    ]
    picked = (
        rejected.assign(
            _rank=ranks, **{"problem or raw answer": rejected["problem"].fillna(rejected["raw"])}
        )
        .sort_values(["_rank", "id"])
        .groupby(["stage", "reason"], sort=False)
        .head(SAMPLE_PER_REASON)
    )
    return picked[["id", "domain", "stage", "reason", "detail", "problem or raw answer"]]


def render_report(
    manifest: dict, data: pd.DataFrame, rejected: pd.DataFrame, attempts: pd.DataFrame
) -> str:
    """The report page for an output's manifest and tables (as read by ``_read``)."""
    max_length = _get(manifest, ("config", "tokens", "max_length"))
    plots = [
        ("funnel", "Funnel: requested → kept, rejected by stage / reason", funnel_figure(manifest)),
        ("tokens", "Token length of kept samples", token_figure(data, max_length)),
        ("pass-rate", "Pass rate over attempts", pass_rate_figure(data, attempts)),
        ("language", "Language mix (kept and rejected)", language_figure(data, rejected)),
        ("duplicates", "Duplicate cluster sizes", duplicate_figure(data, rejected)),
        ("teacher", "Teacher usage by stage: calls, tokens, cost", teacher_figure(manifest)),
        ("isolation", "Sandbox isolation level and judge mode", isolation_figure(manifest)),
    ]
    warnings = consistency_warnings(manifest, data, rejected)
    kept, dropped = sample_kept(data), sample_rejected(rejected)
    title = f"synthgen run {manifest.get('run_id', '?')}"
    parts = [
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}'
        f"</title><style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>",
        f'<p class="meta">created {_esc(manifest.get("created_at"))}, config '
        f"{_esc(manifest.get('config_hash'))}, synthgen "
        f"{_esc(_get(manifest, ('versions', 'synthgen')))}, teacher "
        f"{_esc(_get(manifest, ('config', 'teacher', 'model')))}</p>",
        "<h2>Headline (from manifest.json)</h2>",
        _headline_table(manifest),
        *(f'<p class="warn">{html.escape(w)}</p>' for w in warnings),
        *(_plot_section(*plot) for plot in plots),
        f"<h2>Sample kept rows ({len(kept)} of {len(data)})</h2>",
        _table(kept, text_columns=("problem", "solution")),
        f"<h2>Sample rejected rows (up to {SAMPLE_PER_REASON} per stage / reason)</h2>",
        _table(dropped, text_columns=("detail", "problem or raw answer")),
        "<details><summary>config</summary><pre>"
        + html.escape(json.dumps(manifest.get("config", {}), indent=2))
        + "</pre></details></body></html>",
    ]
    return "\n".join(parts)


def write_report(output: str) -> str:
    """Write ``OUT/report.html`` for the finished output ``OUT``; returns the path written."""
    out = Path(output)
    manifest_path = out / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{out} has no manifest.json: not a finished synthgen output")
    manifest = json.loads(manifest_path.read_text())
    page = render_report(
        manifest,
        _read(out, "data", DATA_COLUMNS),
        _read(out, "rejected", REJECTED_COLUMNS),
        _read(out, "attempts", ATTEMPT_COLUMNS),
    )
    handle, tmp = tempfile.mkstemp(dir=out, prefix=".report-", suffix=".html.tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as f:
            f.write(page)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out / REPORT)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return str(out / REPORT)
