"""MinHash signatures per second on one core: datasketch's update() loop against synthgen's batch.

Both sides start from the raw texts of the same synthetic English-like documents (100-400
words, generated deterministically, one in ten a near duplicate of an earlier one) and end
with a signature per document (word 5-grams, 128 permutations, seed 1 by default):

- datasketch: ``dedup.shingles`` then ``MinHash.update()`` once per shingle with datasketch's
  default sha1 hash (a copy of a cached empty MinHash per document, as ``dedup.signature``
  does); ``update_batch`` (what ``dedup.signature`` calls) is measured too, for reference;
- synthgen: ``minhash.text_signatures`` over batches of ``--batch-size`` texts, normalisation,
  shingling, hashing and permutations included, the word-hash cache emptied before each run.

Single-threaded. ``--repeats`` rounds each time synthgen on all documents and datasketch on
a ``1/repeats`` slice of them (every document once over the rounds), so both sides see the
same load; synthgen's rate is the median of its runs. The synthgen signatures of the first
``--check`` documents are compared with datasketch's ``MinHash`` built with
``hashfunc=minhash.shingle_hash`` from the same shingles.

    python benchmarks/minhash.py [--docs 2000] [--num-perm 128] [--n 5] [--batch-size 500]
                                 [--repeats 5] [--check 200]

Prints ``RESULT minhash_equal 1`` (or 0), ``RESULT minhash_datasketch_per_s``,
``RESULT minhash_datasketch_batch_per_s`` (update_batch, for reference),
``RESULT minhash_synthgen_per_s`` and ``RESULT minhash_speedup`` (synthgen / datasketch
update() loop).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import numpy as np
from datasketch import MinHash

from pipeline.stages import minhash
from pipeline.stages.dedup import shingles as dedup_shingles

SYLLABLES = "ka lo mi ne ru sa te vo pi da gre tan bel for is an the of to in".split()
PUNCTUATION = [",", ".", ";", "!", "?", ":", ""]


def vocabulary(rng: random.Random, size: int = 5000) -> list[str]:
    words = {"".join(rng.choices(SYLLABLES, k=rng.randint(1, 4))) for _ in range(size * 2)}
    return sorted(words)[:size]


def documents(count: int, seed: int = 0) -> list[str]:
    """English-like texts: Zipf-ish word choice, capitals and punctuation, near duplicates."""
    rng = random.Random(seed)
    vocab = vocabulary(rng)
    weights = [1.0 / (rank + 1) for rank in range(len(vocab))]
    docs: list[str] = []
    for i in range(count):
        if i >= 10 and rng.random() < 0.1:
            words = rng.choice(docs).split()
            for _ in range(rng.randint(1, 5)):
                words[rng.randrange(len(words))] = rng.choice(vocab)
            docs.append(" ".join(words))
            continue
        words = rng.choices(vocab, weights, k=rng.randint(100, 400))
        for j in range(0, len(words), rng.randint(8, 20)):
            words[j] = words[j].capitalize()
            if j:
                words[j - 1] += rng.choice(PUNCTUATION)
        docs.append(" ".join(words) + ".")
    return docs


def datasketch_seconds(docs: list[str], num_perm: int, n: int, batch: bool) -> float:
    empty = MinHash(num_perm=num_perm, seed=1)
    started = time.perf_counter()
    for text in docs:
        mh = empty.copy()
        if batch:
            mh.update_batch(sorted(dedup_shingles(text, n)))
        else:
            for shingle in dedup_shingles(text, n):
                mh.update(shingle)
        mh.digest()
    return time.perf_counter() - started


def synthgen_run(docs: list[str], num_perm: int, n: int, batch_size: int):
    minhash._WORD_CACHE.clear()
    started = time.perf_counter()
    sigs = [
        minhash.text_signatures(docs[i : i + batch_size], n=n, num_perm=num_perm)
        for i in range(0, len(docs), batch_size)
    ]
    seconds = time.perf_counter() - started
    return len(docs) / seconds, np.concatenate(sigs)


def equal_to_datasketch(docs: list[str], sigs: np.ndarray, num_perm: int, n: int) -> bool:
    for text, sig in zip(docs, sigs, strict=True):
        mh = MinHash(num_perm=num_perm, seed=1, hashfunc=minhash.shingle_hash)
        for shingle in minhash.shingles(text, n=n):
            mh.update(shingle)
        if sig.dtype != mh.hashvalues.dtype or not np.array_equal(sig, mh.hashvalues):
            return False
    return True


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=2000)
    ap.add_argument("--num-perm", type=int, default=128)
    ap.add_argument("--n", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--check", type=int, default=200)
    args = ap.parse_args()

    docs = documents(args.docs)
    minhash.signature_of("warm up the permutation cache", num_perm=args.num_perm)
    # Rounds interleave the two sides, so a change of load on the shared machine hits both:
    # each round times synthgen on every document and datasketch on a slice of them.
    runs, loop_seconds, batch_seconds = [], 0.0, 0.0
    for r in range(args.repeats):
        runs.append(synthgen_run(docs, args.num_perm, args.n, args.batch_size))
        part = docs[r :: args.repeats]
        loop_seconds += datasketch_seconds(part, args.num_perm, args.n, batch=False)
        batch_seconds += datasketch_seconds(part, args.num_perm, args.n, batch=True)
    synthgen = statistics.median(rate for rate, _ in runs)
    loop, batch = len(docs) / loop_seconds, len(docs) / batch_seconds
    sigs = runs[0][1]
    equal = equal_to_datasketch(docs[: args.check], sigs[: args.check], args.num_perm, args.n)

    print(f"RESULT minhash_equal {int(equal)}")
    print(f"RESULT minhash_datasketch_per_s {loop:.0f}")
    print(f"RESULT minhash_datasketch_batch_per_s {batch:.0f}")
    print(f"RESULT minhash_synthgen_per_s {synthgen:.0f}")
    print(f"RESULT minhash_speedup {synthgen / loop:.1f}")
    return 0 if equal else 1


if __name__ == "__main__":
    raise SystemExit(main())
