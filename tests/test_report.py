"""The run report over real small outputs of the pipeline: one self-contained HTML file whose
headline numbers are the manifest's, with teacher text escaped, checked as text and rendered
in real headless Chromium (Debian's ``chromium``; skipped when it is missing unless
``SYNTHGEN_REQUIRE_CHROMIUM=1``, as in CI).

Three outputs: the quickstart with 3 problems per combination, the same with only French
allowed (every problem rejected, nothing kept), and a copy of the first whose teacher text
was replaced by markup that would run if it were not escaped.
"""

import base64
import html
import json
import os
import re
import shutil
from html.parser import HTMLParser

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.config import load_config
from pipeline.output.report import cluster_sizes, consistency_warnings, write_report
from pipeline.run import run

PLOTS = 7
FNAPI = ["--runner=FnApiRunner"]
HOSTILE = '<script>window.__pwned = 1</script><img src="x" onerror="window.__pwned = 2">'


def _poison(out, table: str, columns: tuple[str, ...]) -> None:
    """Prefix every value of ``columns`` in every shard of ``table`` with ``HOSTILE``."""
    for path in sorted((out / table).glob("*.parquet")):
        shard = pq.read_table(path)
        for column in columns:
            i = shard.schema.get_field_index(column)
            values = [HOSTILE + (v or "") for v in shard.column(i).to_pylist()]
            shard = shard.set_column(i, shard.schema.field(i), pa.array(values, pa.string()))
        pq.write_table(shard, path)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    small = ["run.problems_per_combo=3", f"teacher.cache_dir={tmp / 'cache'}"]
    run(load_config("examples/quickstart.yaml", small), str(tmp / "out"), FNAPI)
    # The bank writes English (and a little German and Spanish): nothing passes French only.
    french = load_config("examples/quickstart.yaml", [*small, "language.allowed=[fr]"])
    run(french, str(tmp / "empty"), FNAPI)
    shutil.copytree(tmp / "out", tmp / "hostile")
    _poison(tmp / "hostile", "data", ("problem", "solution"))
    _poison(tmp / "hostile", "rejected", ("detail", "problem", "raw"))
    return {name: tmp / name for name in ("out", "empty", "hostile")}


@pytest.fixture(scope="module")
def reports(outputs):
    return {name: write_report(str(out)) for name, out in outputs.items()}


def manifest_of(out) -> dict:
    return json.loads((out / "manifest.json").read_text())


def expected_headline(manifest: dict) -> dict:
    funnel, teacher = manifest["funnel"], manifest["teacher"]
    return {
        "requested": funnel["requested"],
        "kept": funnel["kept"],
        "rejected": funnel["rejected"],
        "reconciled": funnel["reconciled"],
        "tokens_data": manifest["tokens"]["data"],
        "teacher_requests": teacher["total"].get("requests"),
        "prompt_tokens": teacher["total"].get("prompt_tokens"),
        "completion_tokens": teacher["total"].get("completion_tokens"),
        "cost_usd": teacher["cost_usd"],
        "cache_hit_rate": teacher["cache_hit_rate"],
        "elapsed_s": manifest["elapsed_s"],
        "tokenizer": manifest["tokenizer"]["name"],
    }


def cell_value(text: str):
    text = text.strip()
    if text in ("yes", "no", "n/a"):
        return {"yes": True, "no": False, "n/a": None}[text]
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return text


class Page(HTMLParser):
    """Every start tag (name, attributes) and the text of every element with an id."""

    def __init__(self, text: str):
        super().__init__()
        self.tags, self.by_id, self._open = [], {}, []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag not in ("img", "meta"):
            self._open.append(attrs.get("id"))
            if attrs.get("id"):
                self.by_id[attrs["id"]] = ""

    def handle_endtag(self, tag):
        if tag not in ("img", "meta") and self._open:
            self._open.pop()

    def handle_data(self, data):
        for element_id in filter(None, self._open):
            self.by_id[element_id] += data


def read_page(path) -> tuple[str, Page]:
    text = open(path, encoding="utf-8").read()
    return text, Page(text)


# ---- the file ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["out", "empty", "hostile"])
def test_report_is_one_self_contained_file(reports, outputs, name):
    path = reports[name]
    assert path == str(outputs[name] / "report.html")
    assert [p.name for p in outputs[name].iterdir() if p.name.startswith(".report-")] == []
    text, page = read_page(path)
    assert re.search(r"https?://", text) is None
    tags = [tag for tag, _ in page.tags]
    assert not {"script", "link", "iframe", "object", "embed"} & set(tags)
    linked = [a[k] for _, a in page.tags for k in ("src", "href", "srcset") if k in a]
    assert linked and all(v.startswith("data:image/png;base64,") for v in linked)
    images = [a for tag, a in page.tags if tag == "img"]
    assert len(images) == PLOTS
    for image in images:
        assert image["alt"].strip()
        png = base64.b64decode(image["src"].removeprefix("data:image/png;base64,"), validate=True)
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
    # Every plot sits in its own section under a heading.
    sections = re.findall(r"<section id=\"section-[\w-]+\"><h2>[^<]+</h2>.*?</section>", text)
    assert len(sections) == PLOTS and all(s.count("<img ") == 1 for s in sections)


def test_teacher_text_is_escaped(reports):
    text, page = read_page(reports["hostile"])
    assert "<script" not in text.lower()
    assert not [k for _, attrs in page.tags for k in attrs if k.startswith("on")]
    assert len([t for t, _ in page.tags if t == "img"]) == PLOTS  # the plots, not the teacher's
    assert text.count(html.escape(HOSTILE)) >= 2  # a kept problem and a rejected row, as text


@pytest.mark.parametrize("name", ["out", "empty"])
def test_headline_numbers_are_the_manifests(reports, outputs, name):
    expected = expected_headline(manifest_of(outputs[name]))
    _, page = read_page(reports[name])
    assert {key: cell_value(page.by_id[key]) for key in expected} == expected


def test_outputs_cover_what_the_report_shows(outputs):
    funnel = manifest_of(outputs["out"])["funnel"]
    assert funnel["kept"] > 0 and funnel["rejected"] > 0
    assert manifest_of(outputs["empty"])["funnel"]["kept"] == 0


def test_zero_kept_output_still_reports(reports):
    text, page = read_page(reports["empty"])
    assert cell_value(page.by_id["kept"]) == 0
    assert "no data: no kept samples" in page.by_id["section-tokens"]
    assert "no data" not in page.by_id["section-funnel"]
    assert "Sample kept rows (0 of 0)" in text
    assert len([t for t, _ in page.tags if t == "img"]) == PLOTS


def test_missing_manifest_is_a_one_line_error(tmp_path):
    (tmp_path / "data").mkdir()
    with pytest.raises(FileNotFoundError, match="has no manifest.json") as info:
        write_report(str(tmp_path))
    assert "\n" not in str(info.value)
    assert not (tmp_path / "report.html").exists()


def test_bare_manifest_without_tables_gives_every_plot_as_no_data(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"run_id": "bare"}))
    text, page = read_page(write_report(str(tmp_path)))
    sections = [v for k, v in page.by_id.items() if k.startswith("section-")]
    assert len(sections) == PLOTS and all("no data: " in s for s in sections)
    assert len([t for t, _ in page.tags if t == "img"]) == PLOTS
    assert cell_value(page.by_id["kept"]) is None and "synthgen run bare" in text


# ---- pure summaries ----------------------------------------------------------------------


def test_cluster_sizes_follow_detail_chains():
    data = pd.DataFrame({"id": ["a", "b"], "dedup_cluster": ["a", "b"]})
    rejected = pd.DataFrame(
        {
            "id": ["c", "d", "e", "f", "g", "h"],
            "reason": [
                "exact_duplicate",  # c -> a
                "near_duplicate",  # d -> a
                "exact_duplicate",  # e -> d -> a: an exact copy of a near duplicate
                "near_duplicate",  # f -> g, a survivor rejected later by select
                "answer_disagreement",
                "contaminated",
            ],
            "detail": ["a", "a", "d", "g", "majority answer ...", "benchmark=humaneval"],
        }
    )
    assert cluster_sizes(data, rejected) == {1: 1, 2: 1, 4: 1}
    assert cluster_sizes(data.iloc[:0], rejected.iloc[:0]) == {}


def test_cluster_sizes_count_every_dropped_duplicate_once(outputs):
    data = pd.read_parquet(outputs["out"] / "data", columns=["id", "dedup_cluster"])
    rejected = pd.read_parquet(outputs["out"] / "rejected", columns=["id", "reason", "detail"])
    dropped = rejected["reason"].isin(["exact_duplicate", "near_duplicate"]).sum()
    sizes = cluster_sizes(data, rejected)
    assert dropped > 0 and sum((k - 1) * n for k, n in sizes.items()) == dropped
    assert sum(sizes.values()) >= len(data)


def test_tables_agree_with_the_manifest(outputs):
    out = outputs["out"]
    manifest = manifest_of(out)
    data = pd.read_parquet(out / "data", columns=["num_tokens"])
    rejected = pd.read_parquet(out / "rejected", columns=["id"])
    assert consistency_warnings(manifest, data, rejected) == []
    manifest["funnel"]["kept"] += 1
    (warning,) = consistency_warnings(manifest, data, rejected)
    assert "funnel.kept" in warning


# ---- in a real browser -------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium():
    path = shutil.which("chromium")
    if path is None:
        message = "Debian's chromium is not on PATH (apt-get install chromium)"
        if os.environ.get("SYNTHGEN_REQUIRE_CHROMIUM") == "1":
            pytest.fail(message + " and SYNTHGEN_REQUIRE_CHROMIUM=1")
        pytest.skip(message + "; set SYNTHGEN_REQUIRE_CHROMIUM=1 to fail instead")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.mark.parametrize("name", ["out", "empty", "hostile"])
def test_report_renders_in_chromium(chromium, reports, outputs, name, tmp_path):
    page = chromium.new_page(viewport={"width": 1200, "height": 900})
    errors, requested = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda r: requested.append(r.url))
    url = "file://" + reports[name]
    page.goto(url, wait_until="load")

    assert errors == []
    assert [u for u in requested if not u.startswith("data:")] == [url]
    assert page.evaluate("window.__pwned") is None
    images = page.locator("img")
    assert images.count() == PLOTS
    for i in range(PLOTS):
        image = images.nth(i)
        assert image.evaluate("e => e.complete && e.naturalWidth") > 0
        box = image.bounding_box()
        assert image.is_visible() and box["width"] > 100 and box["height"] > 50
        assert image.get_attribute("alt").strip()
    assert page.locator("section h2").count() == PLOTS
    expected = expected_headline(manifest_of(outputs[name]))
    shown = {key: cell_value(page.locator(f"td#{key}").inner_text()) for key in expected}
    assert shown == expected
    shot = tmp_path / f"report-{name}.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    page.close()
