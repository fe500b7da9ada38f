"""The job on a gs://-style object store: outputs, response cache and tokenizer file all go
through Beam's FileSystems (tests/objectstore.py: flat keys, no directories, rename = copy +
delete), and the rows equal a run on local disk."""

import json

import objectstore
import pandas as pd
import pytest
from support import char_tokenizer, output_rows

from pipeline.config import load_config
from pipeline.run import OutputError, run
from pipeline.stages.tokens import load_tokenizer

SMALL = ["run.problems_per_combo=2", "generation.attempts=2"]


@pytest.fixture()
def store(tmp_path, monkeypatch):
    monkeypatch.setattr(objectstore, "OBJSTORE_ROOT", str(tmp_path / "objects"))
    return tmp_path / "objects"


def _object_frame(store, prefix: str, table: str) -> pd.DataFrame:
    files = sorted((store / prefix / table).glob("*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def test_a_run_on_an_object_store_equals_a_local_run(store, tmp_path):
    url = "objstore://bucket/runs/r1"
    cfg = load_config(
        "examples/quickstart.yaml", [*SMALL, "teacher.cache_dir=objstore://bucket/cache"]
    )
    manifest = run(cfg, url, ["--runner=FnApiRunner"])
    assert manifest["funnel"]["reconciled"]
    objects = sorted(p.relative_to(store).as_posix() for p in store.rglob("*") if p.is_file())
    assert "bucket/runs/r1/manifest.json" in objects
    assert not [o for o in objects if "/.tmp-" in o or "/_stats/" in o]  # nothing left over
    assert [o for o in objects if o.startswith("bucket/cache/")]  # the response cache
    for shard in [s for shards in manifest["shards"].values() for s in shards]:
        assert f"bucket/runs/r1/{shard['file']}" in objects

    # The same job on local disk, answered from the object-store cache: the same rows.
    local = tmp_path / "local"
    run(cfg, str(local), ["--runner=FnApiRunner"])
    on_store = output_rows(lambda t: _object_frame(store, "bucket/runs/r1", t))
    assert on_store == output_rows(lambda t: pd.read_parquet(local / t))

    # A second run is refused without --overwrite and replaces the first with it.
    with pytest.raises(OutputError, match="not empty"):
        run(cfg, url, ["--runner=FnApiRunner"])
    again = run(cfg, url, ["--runner=FnApiRunner"], overwrite=True)
    stored = json.loads((store / "bucket/runs/r1/manifest.json").read_text())
    assert stored["run_id"] == again["run_id"] != manifest["run_id"]
    assert output_rows(lambda t: _object_frame(store, "bucket/runs/r1", t)) == on_store


def test_a_tokenizer_file_on_an_object_store(store):
    char_tokenizer(store / "bucket" / "tok", ["<|im_start|>", "<|im_end|>", "<|endoftext|>"])
    tok = load_tokenizer("objstore://bucket/tok")  # the directory: finds tokenizer.json
    assert tok.name == "objstore://bucket/tok" and tok.eos_token == "<|endoftext|>"
    assert tok.encode("abc") == [0, 1, 2]
