"""Dedup: problem -> kept | dropped(exact_duplicate | near_duplicate) | errors.

The text compared is the problem's ``statement``, normalised by ``normalize_text``
(NFKC, lowercase, Unicode punctuation removed, whitespace collapsed). "Smallest id wins"
means the lexicographically smallest ``id``; record ids are assumed unique.

1. Exact: records are keyed by ``exact_key`` (a hash of the normalised text) and grouped
   (``GroupByExactKey``); in each group the smallest id survives and the others are dropped
   as ``exact_duplicate`` with ``detail`` = the survivor's id.
2. Near: every exact survivor gets a MinHash ``signature`` of its word ``shingles``
   (``pipeline.stages.minhash``: datasketch's values with synthgen's documented shingle hash,
   ``num_perm`` permutations, seed 1), cut into LSH bands
   (``lsh_params``: datasketch's own optimum for ``threshold``, weighted for recall by
   ``RECALL_WEIGHTS``). Ids are grouped by band key (``GroupByBand``); in each bucket every
   member is paired with the bucket's smallest id only (a star, so a bucket of k records costs
   k - 1 candidates, never k^2), and a candidate pair becomes an edge when the *exact*
   Jaccard similarity of the two records' shingle sets (``sign``: their distinct
   32-bit shingle hashes) is at least ``threshold``. The sets reach the pairs by two joins on
   id (``JoinRootSets``, ``JoinMemberSets``), so band buckets carry ids only.
   Edges are de-duplicated, then ``ConnectedComponents`` (distributed, below) maps every id
   that has an edge to its component's root, the smallest id. Non-root members are dropped as
   ``near_duplicate`` with ``detail`` = the root's id.

3. Against earlier corpora (``dedup.against``: synthgen output directories, or JSONL/Parquet
   files or globs with the text in ``dedup.against_field``): a new record whose text has the
   exact key of an existing row, or shares an LSH band with one and passes the same Jaccard
   check, is dropped as ``duplicate_of_existing`` with ``detail`` = ``<file>#<row id>``
   (``DropDuplicatesOfExisting``); this check runs first. The earlier corpus is only
   read.

With ``dedup.solution`` the near step also bands the problem's reference solution (code) or
program (math), normalised by ``minhash.normalize_code`` (comments and docstrings stripped,
whitespace collapsed): two problems whose solutions are near duplicates are linked too.

Every record leaving the stage carries ``dedup_cluster``: the id of the record that survives
for its cluster (its own id when it is unique or is the survivor). For an exact duplicate
whose survivor is itself a near duplicate, that is the near cluster's root; its ``detail``
still names the exact match.

Determinism: every decision is a minimum over ids within a key group, so survivors and edges
do not depend on bundle splits, element order or the runner.

No global step. Components are found by alternating large-star / small-star rounds over
keyed PCollections (``ConnectedComponents``): every step is a GroupByKey of one node's
neighbours, so a worker holds at most one node's neighbour list (the size of that node's
cluster), never all edges; the rounds are bounded by ``dedup.cc_rounds`` and a final check
fails the run if they did not converge. The (id -> root) pairs, over ids with an edge only,
are joined back to the records by id (``JoinRoots``, ``JoinSurvivorRoots``), not broadcast
as a side input. ``connected_components`` (union-find) is the single-machine reference the
tests compare against.

Caveats on recall. At the default threshold 0.8 (128 permutations: 18 bands x 7 rows) the
LSH S-curve makes a pair of true Jaccard 0.8 a candidate with probability 0.986 and 0.85
with 0.999; verification is exact, so what passes is above the threshold (up to 32-bit hash
collisions). The star verifies members against the bucket's smallest id only: two similar
members of a bucket whose smallest id is similar to neither are connected only if they also
meet in another bucket.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Iterator

import apache_beam as beam
import numpy as np

from pipeline import records
from pipeline.config import DedupConfig
from pipeline.stages.minhash import normalize_text, shingle_hashes, signature_of, signatures
from pipeline.stages.textfiles import file_items

# Signatures travel between workers as little-endian uint32 bytes. datasketch's default scheme
# (affine32, 2.x) and its legacy scheme (1.x) both produce values below 2**32.
_SIG_DTYPE = np.dtype("<u4")


def exact_key(text: str) -> str:
    """Hex hash of the normalised text: equal keys mean equal normalised texts."""
    return hashlib.blake2b(normalize_text(text).encode(), digest_size=16).hexdigest()


def shingles(text: str, n: int) -> set[bytes]:
    """Word n-grams of the normalised text (UTF-8); a text of fewer than n words is one shingle."""
    words = normalize_text(text).split()
    if len(words) < n:
        return {" ".join(words).encode()}
    return {" ".join(words[i : i + n]).encode() for i in range(len(words) - n + 1)}


def signature(text: str, num_perm: int, n: int, seed: int = 1) -> np.ndarray:
    """MinHash signature (``num_perm`` values) of the text's word n-gram shingles: equal to
    ``datasketch.MinHash(num_perm, seed, hashfunc=pipeline.stages.minhash.shingle_hash)`` updated
    with them, computed in one vectorised pass (``pipeline.stages.minhash``)."""
    return signature_of(text, n=n, num_perm=num_perm, seed=seed)


def estimated_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    """Fraction of equal signature positions: the MinHash estimate of Jaccard similarity."""
    return float(np.count_nonzero(np.asarray(sig_a) == np.asarray(sig_b))) / len(sig_a)


def sign(text: str, num_perm: int, n: int, code: bool = False) -> tuple[np.ndarray, bytes]:
    """(MinHash signature, shingle set) of a text from one shingling pass; the set is the
    text's distinct shingle hashes (``minhash.shingle_hash``), sorted, as bytes."""
    hashes = shingle_hashes(text, n=n, code=code)
    sig = signatures([hashes], num_perm=num_perm)[0]
    return sig, np.unique(hashes).astype(_SIG_DTYPE).tobytes()


def exact_jaccard(set_a: bytes, set_b: bytes) -> float:
    """Jaccard similarity of two shingle sets from ``sign`` (0 when both are empty)."""
    a, b = np.frombuffer(set_a, dtype=_SIG_DTYPE), np.frombuffer(set_b, dtype=_SIG_DTYPE)
    common = np.intersect1d(a, b, assume_unique=True).size
    union = a.size + b.size - common
    return common / union if union else 0.0


# LSH candidates are verified by their exact Jaccard similarity, so a false positive costs one
# comparison while a false negative is a duplicate kept: weight misses 99:1 when choosing
# bands x rows. At threshold 0.8 and 128 permutations this gives 18 bands x 7 rows (collision
# probability 0.986 at Jaccard 0.8, 0.999 at 0.85) instead of datasketch's default 9 x 13
# (0.40 and 0.69).
RECALL_WEIGHTS = (0.01, 0.99)


@functools.cache
def lsh_params(
    threshold: float,
    num_perm: int,
    false_positive_weight: float = 0.5,
    false_negative_weight: float = 0.5,
) -> tuple[int, int]:
    """``(bands, rows)`` as datasketch's ``MinHashLSH`` would choose them (same weights)."""
    from datasketch.lsh import _optimal_param

    bands, rows = _optimal_param(threshold, num_perm, false_positive_weight, false_negative_weight)
    return int(bands), int(rows)


def band_keys(sig: np.ndarray, bands: int, rows: int) -> list[str]:
    """One key per band: the band index and a hash of the band's values."""
    values = np.asarray(sig).astype(_SIG_DTYPE)
    if bands * rows > len(values):
        raise ValueError(f"{bands} bands x {rows} rows need more than {len(values)} values")
    keys = []
    for band in range(bands):
        chunk = values[band * rows : (band + 1) * rows].tobytes()
        keys.append(f"{band}:{hashlib.blake2b(chunk, digest_size=12).hexdigest()}")
    return keys


def connected_components(edges: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Union-find over ``edges``: every id seen maps to its component's smallest id."""
    parent: dict[str, str] = {}

    def find(node: str) -> str:
        root = parent.setdefault(node, node)
        while parent[root] != root:
            root = parent[root]
        while parent[node] != root:  # path compression
            parent[node], node = root, parent[node]
        return root

    for a, b in edges:
        root_a, root_b = find(a), find(b)
        if root_a != root_b:
            # The smaller id becomes the root, so every root is its component's minimum.
            if root_b < root_a:
                root_a, root_b = root_b, root_a
            parent[root_b] = root_a
    return {node: find(node) for node in parent}


def large_star(node: str, neighbours: Iterable[str]) -> Iterator[tuple[str, str]]:
    """Large-star (Kiveris et al., 2014): every strictly larger neighbour of ``node`` is linked
    to the smallest of ``node`` and its neighbours. Undirected edges, both directions."""
    neighbours = set(neighbours)
    low = min(neighbours | {node})
    for other in neighbours:
        if other > node:
            yield other, low
            yield low, other


def small_star(node: str, neighbours: Iterable[str]) -> Iterator[tuple[str, str]]:
    """Small-star: ``node`` and its smaller neighbours are linked to the smallest of them."""
    group = {other for other in neighbours if other < node} | {node}
    low = min(group)
    for other in group:
        if other != low:
            yield other, low
            yield low, other


def labels_and_claims(node: str, neighbours: Iterable[str]) -> Iterator[tuple[str, tuple]]:
    """The node's label (smallest of it and its neighbours) for itself, and as a claim to each
    neighbour: converged exactly when every node's claims all equal its own label."""
    neighbours = set(neighbours)
    root = min(neighbours | {node})
    yield node, ("self", root)
    for other in neighbours:
        yield other, ("claim", root)


# ---- Beam wiring ------------------------------------------------------------------------


def _counter(reason: str):
    return records.counter(records.DEDUP, reason)


def _error_output(record, exc: Exception):
    _counter(records.ERROR).inc()
    return beam.pvalue.TaggedOutput(records.ERRORS, records.error(record, records.DEDUP, exc))


class _KeyByTextFn(beam.DoFn):
    """record -> (exact_key(statement), record); a record without a text goes to errors."""

    def process(self, record):
        try:
            if not isinstance(record["id"], str):
                raise TypeError(f"id must be a string, got {type(record['id']).__name__}")
            key = exact_key(record["statement"])
        except Exception as exc:  # noqa: BLE001 - routed to the errors output with its text
            yield _error_output(record, exc)
            return
        yield key, record


def _pick_exact_survivor(group):
    """(key, records) -> the smallest id kept; the others tagged as exact duplicates.

    Two passes over the grouped iterable instead of sorting it, so a huge group is streamed.
    """
    _, members = group
    survivor = min((r["id"], r["statement"]) for r in members)
    kept = False
    for record in members:
        if not kept and (record["id"], record["statement"]) == survivor:
            kept = True
            yield record
        else:
            _counter(records.EXACT_DUPLICATE).inc()
            yield beam.pvalue.TaggedOutput(
                records.DROPPED,
                records.drop(
                    record,
                    records.DEDUP,
                    records.EXACT_DUPLICATE,
                    survivor[0],
                    dedup_cluster=survivor[0],
                ),
            )


_SIGNED = "signed"


_SETS = "sets"


class _BandFn(beam.DoFn):
    """record -> (band key, id) for every LSH band of the statement's signature (keys "t...")
    and, with ``dedup.solution``, of the reference solution's or math program's code-normalised
    signature (keys "s..."); on ``sets``, ((kind, id), shingle set) for verifying candidates;
    on ``signed``, the record itself (a record whose signature failed goes to errors only)."""

    def __init__(self, cfg: DedupConfig):
        self._cfg = cfg

    def setup(self):
        self._params = lsh_params(self._cfg.threshold, self._cfg.num_perm, *RECALL_WEIGHTS)

    def process(self, record):
        cfg = self._cfg
        try:
            texts = {"t": (record["statement"], False)}
            solution = record.get("reference_solution") or record.get("program")
            if cfg.solution and solution:
                texts["s"] = (solution, True)
            out = []
            for kind, (text, code) in texts.items():
                sig, shingle_set = sign(text, cfg.num_perm, cfg.shingle_size, code)
                out += [(f"{kind}{key}", record["id"]) for key in band_keys(sig, *self._params)]
                out.append(beam.pvalue.TaggedOutput(_SETS, ((kind, record["id"]), shingle_set)))
        except Exception as exc:  # noqa: BLE001 - routed to the errors output with its text
            yield _error_output(record, exc)
            return
        yield from out
        yield beam.pvalue.TaggedOutput(_SIGNED, record)


def _star_candidates(bucket):
    """(band key, ids) -> ((kind, smallest id), other id): a star, not all pairs."""
    key, ids = bucket
    ids = sorted(set(ids))
    for other in ids[1:]:
        yield (key[0], ids[0]), other


def _attach_root_set(item):
    """((kind, root), {"other": ids, "set": [root's set]}) -> ((kind, other), (root, set))."""
    (kind, root), parts = item
    for root_set in parts["set"]:
        for other in parts["other"]:
            yield (kind, other), (root, root_set)


def _verified_edges(item, threshold: float):
    """((kind, id), {"root": [(root, set)], "set": [id's set]}) -> (root, id) when the exact
    Jaccard similarity of the two shingle sets reaches ``threshold``."""
    (_, member), parts = item
    for member_set in parts["set"]:
        for root, root_set in parts["root"]:
            if exact_jaccard(root_set, member_set) >= threshold:
                yield root, member


class ComponentsDidNotConverge(RuntimeError):
    """Large-star / small-star rounds ended with a label that is not a root."""


def _star_round(edges, label: str, op):
    return (
        edges
        | f"GroupNeighbours{label}" >> beam.GroupByKey()
        | f"{op.__name__.title().replace('_', '')}{label}" >> beam.FlatMapTuple(op)
    )


def _check_converged(item, rounds: int):
    """(node, tagged labels) -> (node, root) for a non-root node. Labels agree across every
    edge only when each component is one star around its smallest id; else the run fails."""
    node, tagged = item
    root, claims = None, set()
    for tag, label in tagged:
        if tag == "self":
            root = label
        else:
            claims.add(label)
    if claims - {root}:
        raise ComponentsDidNotConverge(
            f"connected components did not converge in {rounds} rounds (node {node!r}: label "
            f"{root!r}, neighbours' labels {sorted(claims)[:3]}); raise dedup.cc_rounds"
        )
    if root != node:
        yield node, root


class ConnectedComponents(beam.PTransform):
    """Undirected edges (a, b) -> (id, root) for every id with an edge that is not a root;
    root = the smallest id of its component.

    Alternating large-star / small-star rounds over keyed PCollections: each round groups
    every node's neighbours (a GroupByKey per star), so no worker ever holds more than one
    node's neighbour list, and the edges shrink towards stars around each component's
    smallest id. The rounds are unrolled (a batch graph has no loops); once converged a round
    changes nothing, and a final check that every edge joins two nodes of the same label
    (true only of stars around each component's smallest id) fails the run otherwise.
    Practical dedup graphs converge in a handful of rounds (the number grows with the
    logarithm of the component size); ``dedup.cc_rounds`` bounds them."""

    def __init__(self, rounds: int):
        super().__init__()
        self._rounds = rounds

    def expand(self, edges):
        edges = edges | "BothDirections" >> beam.FlatMapTuple(lambda a, b: [(a, b), (b, a)])
        for index in range(self._rounds):
            edges = _star_round(edges, f"Large{index}", large_star)
            edges = _star_round(edges, f"Small{index}", small_star)
        return (
            edges
            | "GroupFinalNeighbours" >> beam.GroupByKey()
            | "LabelsAndClaims" >> beam.FlatMapTuple(labels_and_claims)
            | "GroupLabels" >> beam.GroupByKey()
            | "CheckConverged" >> beam.FlatMap(_check_converged, self._rounds)
        )


def _with_final_cluster(item):
    """An exact duplicate's cluster follows its survivor into the survivor's near cluster."""
    _, parts = item
    roots = parts["root"]
    for record in parts["record"]:
        cluster = roots[0] if roots else record["dedup_cluster"]
        yield {**record, "dedup_cluster": cluster}


def _mark_near_duplicates(item):
    """(id, {"record": [record], "root": [root] or []}) -> kept, or dropped as a near
    duplicate of its component's root."""
    _, parts = item
    roots = parts["root"]
    for record in parts["record"]:
        if not roots:
            _counter(records.KEPT).inc()
            yield {**record, "dedup_cluster": record["id"]}
        else:
            _counter(records.NEAR_DUPLICATE).inc()
            yield beam.pvalue.TaggedOutput(
                records.DROPPED,
                records.drop(
                    record, records.DEDUP, records.NEAR_DUPLICATE, roots[0], dedup_cluster=roots[0]
                ),
            )


# ---- against earlier corpora -----------------------------------------------------------


def against_files(specs: Iterable[str]) -> list[tuple[str, str | None]]:
    """``(file, field)`` for every ``dedup.against`` spec: a synthgen output directory gives
    its ``data/*.parquet`` with field ``problem``; anything else is a file or glob read with
    ``dedup.against_field`` (None here)."""
    from apache_beam.io.filesystems import FileSystems

    files = []
    for spec in specs:
        manifest = FileSystems.join(spec, "manifest.json")
        if FileSystems.exists(manifest):
            pattern, field = FileSystems.join(spec, "data", "*.parquet"), "problem"
        else:
            pattern, field = spec, None
        matched = sorted(m.path for r in FileSystems.match([pattern]) for m in r.metadata_list)
        if not matched:
            raise ValueError(f"dedup.against: '{spec}' matches no file")
        files += [(path, field) for path in matched]
    return files


def _existing_items(file_and_field, default_field: str, num_perm: int, shingle_size: int):
    """file -> (id, exact key, signature, shingle set) of every row (ids prefixed by the
    file)."""
    path, field = file_and_field
    for item_id, text in file_items(path, field or default_field):
        yield (f"{path}#{item_id}", exact_key(text), *sign(text, num_perm, shingle_size))


def _new_items(record, num_perm: int, shingle_size: int):
    try:
        text = record["statement"]
        yield record["id"], exact_key(text), *sign(text, num_perm, shingle_size)
    except Exception:  # noqa: BLE001 - such a record goes to errors in the main dedup
        return


def _keyed_by_text(item, side: str):
    item_id, key, _, _ = item
    return key, (side, item_id)


def _banded(item, side: str, bands: int, rows: int):
    item_id, _, sig, shingles_set = item
    for key in band_keys(sig, bands, rows):
        yield key, (side, item_id, shingles_set)


def _exact_matches(group):
    """(exact key, tagged ids) -> (new id, existing id) for every new id under an existing."""
    _, members = group
    old = [i for side, i in members if side == "old"]
    if old:
        first = min(old)
        for side, item_id in members:
            if side == "new":
                yield item_id, first


def _near_matches(bucket, threshold: float):
    """(band key, tagged members) -> (new id, existing id) for verified near duplicates."""
    _, members = bucket
    old = [(i, theirs) for side, i, theirs in members if side == "old"]
    if not old:
        return
    for side, item_id, mine in members:
        if side != "new":
            continue
        matches = [i for i, theirs in old if exact_jaccard(mine, theirs) >= threshold]
        if matches:
            yield item_id, min(matches)


def _mark_existing_duplicates(item):
    _, parts = item
    matches = parts["match"]
    for record in parts["record"]:
        if matches:
            _counter(records.DUPLICATE_OF_EXISTING).inc()
            match = min(matches)
            yield beam.pvalue.TaggedOutput(
                records.DROPPED,
                records.drop(
                    record,
                    records.DEDUP,
                    records.DUPLICATE_OF_EXISTING,
                    match,
                    dedup_cluster=match,
                ),
            )
        else:
            yield record


class DropDuplicatesOfExisting(beam.PTransform):
    """New records -> those that duplicate no row of ``dedup.against`` (main output), and the
    others (``DROPPED``, reason ``duplicate_of_existing``, detail ``<file>#<row id>``). The
    same exact key and MinHash LSH + verified Jaccard as within a run; the earlier corpus is
    only read."""

    def __init__(self, cfg: DedupConfig):
        super().__init__()
        self._cfg = cfg

    def expand(self, problems):
        cfg = self._cfg
        bands, rows = lsh_params(cfg.threshold, cfg.num_perm, *RECALL_WEIGHTS)
        sign = (cfg.num_perm, cfg.shingle_size)
        existing = (
            problems.pipeline
            | "ExistingFiles" >> beam.Create(against_files(cfg.against))
            | "SpreadExistingFiles" >> beam.Reshuffle()
            | "ReadExisting" >> beam.FlatMap(_existing_items, cfg.against_field, *sign)
        )
        new = problems | "SignNew" >> beam.FlatMap(_new_items, *sign)
        exact = (
            (
                existing | "ExactKeyOld" >> beam.Map(_keyed_by_text, "old"),
                new | "ExactKeyNew" >> beam.Map(_keyed_by_text, "new"),
            )
            | "FlattenExactKeys" >> beam.Flatten()
            | "GroupExistingExact" >> beam.GroupByKey()
            | "ExactMatches" >> beam.FlatMap(_exact_matches)
        )
        near = (
            (
                existing | "BandOld" >> beam.FlatMap(_banded, "old", bands, rows),
                new | "BandNew" >> beam.FlatMap(_banded, "new", bands, rows),
            )
            | "FlattenBands" >> beam.Flatten()
            | "GroupExistingBands" >> beam.GroupByKey()
            | "NearMatches" >> beam.FlatMap(_near_matches, cfg.threshold)
        )
        matches = (exact, near) | "FlattenMatches" >> beam.Flatten()
        return (
            {"record": problems | "KeyNewById" >> beam.Map(lambda r: (r.get("id"), r)),
             "match": matches}
            | "JoinMatches" >> beam.CoGroupByKey()
            | "MarkExistingDuplicates"
            >> records.dict_outputs(beam.FlatMap(_mark_existing_duplicates), records.DROPPED)
        )  # fmt: skip


def _own_cluster(record: dict) -> tuple[dict, None, str]:
    return {**record, "dedup_cluster": record["id"]}, None, ""


class Dedup(beam.PTransform):
    """Problem records -> StageOutputs; exact then near duplicates of ``statement`` dropped."""

    def __init__(self, cfg: DedupConfig):
        super().__init__()
        self._cfg = cfg

    def expand(self, problems):
        if not self._cfg.enabled:
            return records.route(problems, "KeepAll", records.DEDUP, _own_cluster)
        against_dropped = []
        if self._cfg.against:
            checked = problems | "AgainstExisting" >> DropDuplicatesOfExisting(self._cfg)
            problems, against_dropped = checked[records.KEPT], [checked[records.DROPPED]]

        keyed = problems | "KeyByExactKey" >> beam.ParDo(_KeyByTextFn()).with_outputs(
            records.ERRORS, main="keyed"
        )
        exact = (
            keyed.keyed
            | "GroupByExactKey" >> beam.GroupByKey()
            | "PickExactSurvivor"
            >> records.dict_outputs(beam.FlatMap(_pick_exact_survivor), records.DROPPED)
        )
        band_fn = beam.ParDo(_BandFn(self._cfg)).with_output_types(tuple[str, str])
        banded = exact[records.KEPT] | "BandSignatures" >> band_fn.with_outputs(
            records.ERRORS, _SETS, _SIGNED, main="banded"
        )
        candidates = (
            banded.banded
            | "GroupByBand" >> beam.GroupByKey()
            | "StarCandidates" >> beam.FlatMap(_star_candidates)
            | "DistinctCandidates" >> beam.Distinct()
        )
        with_root_sets = (
            {"other": candidates, "set": banded[_SETS]}
            | "JoinRootSets" >> beam.CoGroupByKey()
            | "AttachRootSets" >> beam.FlatMap(_attach_root_set)
        )
        edges = (
            {"root": with_root_sets, "set": banded[_SETS]}
            | "JoinMemberSets" >> beam.CoGroupByKey()
            | "VerifyExactJaccard" >> beam.FlatMap(_verified_edges, self._cfg.threshold)
            | "DistinctEdges" >> beam.Distinct()
        )
        roots = edges | "ConnectComponents" >> ConnectedComponents(self._cfg.cc_rounds)
        survivors = banded[_SIGNED] | "KeyById" >> beam.Map(lambda r: (r["id"], r))
        near = (
            {"record": survivors, "root": roots}
            | "JoinRoots" >> beam.CoGroupByKey()
            | "MarkNearDuplicates"
            >> records.dict_outputs(beam.FlatMap(_mark_near_duplicates), records.DROPPED)
        )
        exact_dropped = (
            {
                "record": exact[records.DROPPED]
                | "KeyBySurvivor" >> beam.Map(lambda r: (r["dedup_cluster"], r)),
                "root": roots,
            }
            | "JoinSurvivorRoots" >> beam.CoGroupByKey()
            | "ResolveExactClusters" >> beam.FlatMap(_with_final_cluster)
        )
        dropped = (
            exact_dropped,
            near[records.DROPPED],
            *against_dropped,
        ) | "FlattenDropped" >> beam.Flatten()
        errors = (keyed[records.ERRORS], banded[records.ERRORS]) | "FlattenErrors" >> beam.Flatten()
        return records.StageOutputs(near[records.KEPT], dropped, errors)
