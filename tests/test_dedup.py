import json
import random

import apache_beam as beam
import numpy as np
import pandas as pd
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to
from datasketch import MinHash, MinHashLSH
from support import assert_conserved

from pipeline import records
from pipeline.config import DedupConfig
from pipeline.stages.dedup import (
    RECALL_WEIGHTS,
    ConnectedComponents,
    Dedup,
    band_keys,
    connected_components,
    estimated_jaccard,
    exact_key,
    lsh_params,
    normalize_text,
    shingles,
    signature,
)
from pipeline.stages.minhash import shingle_hash

VOCAB = [f"w{i}" for i in range(5000)]
# Pipeline tests use a config whose S-curve leaves a wide margin at the planted similarities
# (see test_default_config_recall for what the default config does).
TEST_CFG = DedupConfig(threshold=0.7, num_perm=128, shingle_size=3)


def random_text(rng: random.Random, words: int = 60) -> str:
    return " ".join(rng.choice(VOCAB) for _ in range(words))


def change_word(text: str, position: int, new: str = "changed") -> str:
    words = text.split()
    words[position] = new
    return " ".join(words)


def near_pair_found(a: str, b: str, cfg: DedupConfig) -> bool:
    """What the pipeline's near step decides for a lone pair: a shared band, then verified."""
    bands, rows = lsh_params(cfg.threshold, cfg.num_perm, *RECALL_WEIGHTS)
    sig_a = signature(a, cfg.num_perm, cfg.shingle_size)
    sig_b = signature(b, cfg.num_perm, cfg.shingle_size)
    shared = set(band_keys(sig_a, bands, rows)) & set(band_keys(sig_b, bands, rows))
    return bool(shared) and estimated_jaccard(sig_a, sig_b) >= cfg.threshold


# ---- pure functions --------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Hello world", "hello world"),
        ("  Hello,   WORLD!!  \n\t(again) ", "hello world again"),
        ("", ""),
        ("?!...", ""),
        ("ＡＢＣ １２３", "abc 123"),  # NFKC folds full-width forms
        ("Café «déjà» vu—ok", "café déjà vu ok"),
        ("x+y=3; f(x)", "x+y=3 f x"),  # maths symbols are not punctuation
        ("don't", "don t"),
    ],
)
def test_normalize_text(text, expected):
    assert normalize_text(text) == expected


def test_normalize_text_huge_input():
    assert normalize_text("Word, word! " * 100_000) == " ".join(["word"] * 200_000)


@pytest.mark.parametrize(
    "a, b",
    [
        ("Sum two numbers.", "sum   TWO numbers"),
        ("Ｓｕｍ two numbers", "sum two numbers!"),
        ("", "  ...  "),
    ],
)
def test_exact_key_ignores_case_punctuation_and_spacing(a, b):
    assert exact_key(a) == exact_key(b)


def test_exact_key_separates_different_texts():
    assert exact_key("sum two numbers") != exact_key("sum three numbers")
    assert len(exact_key("anything")) == 32


@pytest.mark.parametrize(
    "text, n, expected",
    [
        ("a b c d", 2, {b"a b", b"b c", b"c d"}),
        ("a b c d", 4, {b"a b c d"}),
        ("A, b!", 5, {b"a b"}),  # shorter than n: one shingle of the whole text
        ("", 3, {b""}),
        ("été à", 1, {"été".encode(), "à".encode()}),
    ],
)
def test_shingles(text, n, expected):
    assert shingles(text, n) == expected


def test_signature_is_deterministic_and_datasketch_compatible():
    text = random_text(random.Random(1))
    sig = signature(text, 128, 5)
    assert sig.shape == (128,)
    np.testing.assert_array_equal(sig, signature(text, 128, 5))
    reference = MinHash(num_perm=128, seed=1, hashfunc=shingle_hash)
    reference.update_batch(list(shingles(text, 5)))
    np.testing.assert_array_equal(sig, reference.digest())
    assert not np.array_equal(sig, signature(text, 128, 5, seed=2))
    np.testing.assert_array_equal(sig, signature(text.upper() + " !!", 128, 5))


@pytest.mark.parametrize("text", ["", "one", "x " * 50_000])
def test_signature_edge_inputs(text):
    assert signature(text, 64, 5).shape == (64,)


@pytest.mark.parametrize("threshold, num_perm", [(0.8, 128), (0.5, 64), (0.9, 256)])
def test_lsh_params_match_datasketch(threshold, num_perm):
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    bands, rows = lsh_params(threshold, num_perm)
    assert (bands, rows) == (lsh.b, lsh.r)
    assert bands * rows <= num_perm


def test_band_keys():
    sig = signature("some text to hash into bands", 128, 2)
    keys = band_keys(sig, 9, 13)
    assert len(keys) == 9 and len(set(keys)) == 9
    assert [k.split(":")[0] for k in keys] == [str(i) for i in range(9)]
    assert keys == band_keys(sig.copy(), 9, 13)
    with pytest.raises(ValueError):
        band_keys(sig, 10, 13)


def test_connected_components_transitive_smallest_root():
    edges = [("b", "c"), ("c", "d"), ("a", "d"), ("x", "y"), ("y", "x"), ("b", "c")]
    expected = {"a": "a", "b": "a", "c": "a", "d": "a", "x": "x", "y": "x"}
    assert connected_components(edges) == expected
    for seed in range(5):
        shuffled = [tuple(random.Random(seed).sample(e, 2)) for e in edges]
        random.Random(seed).shuffle(shuffled)
        assert connected_components(shuffled) == expected
    assert connected_components([]) == {}


def test_connected_components_long_chain():
    ids = [f"id{i:06d}" for i in range(20_000)]
    edges = list(zip(ids[1:], ids[:-1], strict=True))
    random.Random(0).shuffle(edges)
    assert set(connected_components(edges).values()) == {"id000000"}


def test_planted_near_duplicates_are_caught():
    for seed in range(50):
        rng = random.Random(seed)
        text = random_text(rng)
        assert near_pair_found(text, change_word(text, rng.randrange(60)), TEST_CFG), seed


def test_different_texts_are_not_near_duplicates():
    rng = random.Random(7)
    texts = [random_text(rng) for _ in range(40)]
    for cfg in (TEST_CFG, DedupConfig()):
        for a, b in zip(texts[::2], texts[1::2], strict=True):
            assert not near_pair_found(a, b, cfg)


def test_default_config_recall():
    """The default (0.8, 128 perms, 5-shingles) finds most one-word edits of 60 words.

    Such a pair has true Jaccard 51/61 = 0.84, where the recall-weighted 16 x 8 banding
    collides with probability 0.99 and the 128-value estimate falls below 0.8 about 1 time in 8.
    """
    cfg = DedupConfig()
    found = 0
    for seed in range(100):
        rng = random.Random(seed)
        text = random_text(rng)
        found += near_pair_found(text, change_word(text, rng.randrange(60)), cfg)
    assert found >= 75


# ---- the transform ---------------------------------------------------------------------


def find_chain(cfg: DedupConfig) -> tuple[str, str, str]:
    """Texts a ~ b ~ c with a !~ c, each pair decided exactly as the star buckets decide it."""
    bands, rows = lsh_params(cfg.threshold, cfg.num_perm, *RECALL_WEIGHTS)
    for seed in range(100):
        rng = random.Random(seed)
        a = random_text(rng, 100)
        positions = rng.sample(range(0, 100, 4), 8)
        b = a
        for p in positions[:4]:
            b = change_word(b, p, f"b{p}")
        c = b
        for p in positions[4:]:
            c = change_word(c, p, f"c{p}")
        sigs = [signature(t, cfg.num_perm, cfg.shingle_size) for t in (a, b, c)]
        keys = [set(band_keys(s, bands, rows)) for s in sigs]
        sim = [[estimated_jaccard(x, y) >= cfg.threshold for y in sigs] for x in sigs]
        # a-b must meet in a bucket without c (in a shared bucket c, the smallest id, is the
        # star's centre and a !~ c); b-c meet anywhere.
        if (
            sim[0][1]
            and sim[1][2]
            and not sim[0][2]
            and (keys[0] & keys[1]) - keys[2]
            and keys[1] & keys[2]
        ):
            return a, b, c
    raise AssertionError("no chain found: the similarity design no longer fits the config")


def problem(id_: str, statement) -> dict:
    return {"id": id_, "domain": "code", "statement": statement}


def dedup_case():
    rng = random.Random(42)
    base = random_text(rng)
    a, b, c = find_chain(TEST_CFG)
    inputs = [
        problem("p05", base),
        problem("p02", base.upper() + " !!!"),  # exact duplicate of p05, smaller id
        problem("p09", "  " + base.replace(" ", "   ")),  # exact duplicate too
        problem("p04", a),  # near chain p04 ~ p08 ~ p01 (p04 !~ p01): one survivor, p01
        problem("p08", b),
        problem("p01", c),
        problem("p10", a.replace(" ", ", ")),  # exact duplicate of p04, which is near-dropped
        problem("p03", random_text(rng)),
        problem("p06", random_text(rng)),
        problem("p12", "Add two numbers."),
        problem("p11", None),  # an error
    ]
    kept = [("p02", "p02"), ("p01", "p01"), ("p03", "p03"), ("p06", "p06"), ("p12", "p12")]
    dropped = [
        ("p05", records.EXACT_DUPLICATE, "p02", "p02"),
        ("p09", records.EXACT_DUPLICATE, "p02", "p02"),
        ("p10", records.EXACT_DUPLICATE, "p04", "p01"),
        ("p04", records.NEAR_DUPLICATE, "p01", "p01"),
        ("p08", records.NEAR_DUPLICATE, "p01", "p01"),
    ]
    return inputs, kept, dropped, [("p11", records.ERROR)]


def _create_plain(p, inputs):
    return p | "Create" >> beam.Create(inputs)


def _create_reversed_reshuffled(p, inputs):
    return (
        p | "Create" >> beam.Create(inputs[::-1], reshuffle=False) | "Reshuffle" >> beam.Reshuffle()
    )


def _create_shuffled_split(p, inputs):
    shuffled = random.Random(3).sample(inputs, len(inputs))
    first = p | "CreateA" >> beam.Create(shuffled[:4], reshuffle=False)
    second = p | "CreateB" >> beam.Create(shuffled[4:])
    return (second, first) | "Merge" >> beam.Flatten() | "Reshuffle" >> beam.Reshuffle()


@pytest.mark.parametrize(
    "create", [_create_plain, _create_reversed_reshuffled, _create_shuffled_split]
)
def test_dedup_pipeline_same_survivors_for_any_order_or_split(create):
    inputs, kept, dropped, errors = dedup_case()
    p = BeamTestPipeline(options=PipelineOptions(["--runner=FnApiRunner"]))
    out = create(p, inputs) | Dedup(TEST_CFG)
    assert_that(
        out.kept | "KeptView" >> beam.Map(lambda r: (r["id"], r["dedup_cluster"])),
        equal_to(kept),
        label="Kept",
    )
    assert_that(
        out.dropped
        | "DroppedView"
        >> beam.Map(lambda r: (r["id"], r["reason"], r["detail"], r["dedup_cluster"])),
        equal_to(dropped),
        label="Dropped",
    )
    assert_that(
        out.errors | "ErrorsView" >> beam.Map(lambda r: (r["id"], r["reason"])),
        equal_to(errors),
        label="Errors",
    )
    assert_conserved(out, inputs)
    result = p.run()
    result.wait_until_finish()
    counters = {
        c.key.metric.name: c.committed
        for c in result.metrics().query()["counters"]
        if c.key.metric.namespace == records.DEDUP
    }
    assert counters == {
        records.KEPT: 5,
        records.EXACT_DUPLICATE: 3,
        records.NEAR_DUPLICATE: 2,
        records.ERROR: 1,
    }


def test_dedup_disabled_passes_through():
    inputs = [problem("b", "same text"), problem("a", "same text")]
    options = PipelineOptions(["--runner=FnApiRunner"])
    with BeamTestPipeline(options=options) as p:
        out = p | beam.Create(inputs) | Dedup(DedupConfig(enabled=False))
        assert_that(
            out.kept | "KeptView" >> beam.Map(lambda r: (r["id"], r["dedup_cluster"])),
            equal_to([("a", "a"), ("b", "b")]),
            label="Kept",
        )
        assert_that(out.dropped, equal_to([]), label="Dropped")
        assert_that(out.errors, equal_to([]), label="Errors")


def _run_components(edges, rounds=12):
    with BeamTestPipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as p:
        roots = p | beam.Create(edges) | ConnectedComponents(rounds)
        expected = {k: v for k, v in connected_components(edges).items() if k != v}
        assert_that(roots, equal_to(sorted(expected.items())))


def _random_graph(seed: int, nodes: int, edges: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    ids = [f"n{rng.randrange(10**6):06d}-{i}" for i in range(nodes)]
    return [tuple(rng.sample(ids, 2)) for _ in range(edges)]


@pytest.mark.parametrize(
    "edges",
    [
        [("b", "a"), ("c", "b"), ("e", "d")],
        # a 301-node path, edges in random order: the deepest component for its size
        [(f"id{i:04d}", f"id{i + 1:04d}") for i in random.Random(5).sample(range(300), 300)],
        [(f"z{i:03d}", "hub") for i in range(200)] + [("a", "z050")],
        _random_graph(1, 400, 300),
        _random_graph(2, 100, 400),
    ],
    ids=["small", "shuffled-chain", "hub", "sparse-random", "dense-random"],
)
def test_distributed_components_equal_union_find(edges):
    _run_components(edges)


def test_components_that_do_not_converge_fail_the_run():
    chain = [(f"id{i:04d}", f"id{i + 1:04d}") for i in range(0, 300)][::-1]
    with pytest.raises(Exception, match="did not converge in 1 rounds"):
        _run_components(chain, rounds=1)


def test_dedup_against_earlier_corpora_drops_what_it_must_and_nothing_else(tmp_path):
    rng = random.Random(11)
    old_a, old_b, unrelated = random_text(rng), random_text(rng), random_text(rng)
    # an earlier synthgen output (manifest + data/*.parquet with `problem`) and a JSONL file
    earlier = tmp_path / "earlier"
    (earlier / "data").mkdir(parents=True)
    (earlier / "manifest.json").write_text("{}")
    pd.DataFrame({"id": ["e1"], "problem": [old_a]}).to_parquet(earlier / "data" / "d.parquet")
    jsonl = tmp_path / "old.jsonl"
    jsonl.write_text(json.dumps({"id": "j7", "text": old_b}) + "\n")
    before = {p: p.read_bytes() for p in [jsonl, earlier / "data" / "d.parquet"]}
    cfg = TEST_CFG.model_copy(update={"against": (str(earlier), str(jsonl))})
    inputs = [
        problem("n1", old_a.upper()),  # exact duplicate of the earlier output's row
        problem("n2", change_word(old_b, 10)),  # near duplicate of the JSONL row
        problem("n3", unrelated),
        problem("n4", unrelated + " !"),  # exact duplicate within the run: the usual reason
    ]
    with BeamTestPipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as p:
        out = p | beam.Create(inputs) | Dedup(cfg)
        assert_that(out.kept | "Kept" >> beam.Map(lambda r: r["id"]), equal_to(["n3"]))
        assert_that(
            out.dropped | "Dropped" >> beam.Map(lambda r: (r["id"], r["reason"], r["detail"])),
            equal_to(
                [
                    ("n1", records.DUPLICATE_OF_EXISTING, f"{earlier}/data/d.parquet#e1"),
                    ("n2", records.DUPLICATE_OF_EXISTING, f"{jsonl}#j7"),
                    ("n4", records.EXACT_DUPLICATE, "n3"),
                ]
            ),
            label="DroppedView",
        )
    assert {p: p.read_bytes() for p in before} == before  # the earlier corpus is only read


def test_dedup_against_a_missing_corpus_is_a_config_error(tmp_path):
    with pytest.raises(ValueError, match="matches no file"):
        DedupConfig(against=(str(tmp_path / "nothing-*.jsonl"),))


def test_dedup_on_the_solution_links_problems_with_the_same_code():
    rng = random.Random(21)
    code = "def solve(xs):\n    # sum the evens\n    return sum(x for x in xs if x % 2 == 0)\n"
    renamed = '"""Docstring."""\ndef solve(xs):\n    return sum(x for x in xs if x % 2 == 0)\n'
    inputs = [
        {**problem("a", random_text(rng)), "reference_solution": code},
        {**problem("b", random_text(rng)), "reference_solution": renamed},
        {**problem("c", random_text(rng)), "reference_solution": "def other():\n    pass\n"},
    ]
    for enabled, kept in ((False, ["a", "b", "c"]), (True, ["a", "c"])):
        cfg = TEST_CFG.model_copy(update={"solution": enabled})
        with BeamTestPipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as p:
            out = p | beam.Create(inputs) | Dedup(cfg)
            assert_that(out.kept | beam.Map(lambda r: r["id"]), equal_to(kept))
