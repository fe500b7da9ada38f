import random
import subprocess
import sys

import numpy as np
import pytest
import xxhash
from datasketch import MinHash, MinHashLSH

from pipeline.stages import dedup, minhash
from pipeline.stages.minhash import (
    char_shingle_hash,
    hashfunc,
    normalize_code,
    normalize_text,
    shingle_hash,
    shingle_hashes,
    shingles,
    signature_of,
    signatures,
    text_signatures,
    to_datasketch,
)

VOCAB = [f"w{i}" for i in range(3000)]

CODE = '''\
def add(a, b):
    """Add two numbers.

    Returns their sum.
    """
    # the obvious way
    return a + b  # done


COLOUR = "#ff0000"  # a string with a hash sign stays
NOTE = \'\'\'a triple-quoted string
goes\'\'\'
'''

DOCS = {
    "empty": "",
    "punctuation_only": "  ...!?,;  \n\t ",
    "one_word": "Hello",
    "fewer_than_n": "Hello, big world!",
    "exactly_n": "one two three four five",
    "unicode": "Ｆｕｌｌ-width ﬁne straße ΣΊΣΥΦΟΣ «quoted» 日本語 テキスト 😀 café CAFÉ naïve",
    "sentence": "The quick brown fox jumps over the lazy dog; the dog sleeps, the fox runs.",
    "long": " ".join(random.Random(7).choice(VOCAB) for _ in range(3000)),
    "code": CODE,
}


def datasketch_signature(text, *, n=5, mode="word", code=False, num_perm=128, seed=1, **kw):
    """The reference: datasketch itself, updated one shingle at a time."""
    mh = MinHash(num_perm=num_perm, seed=seed, hashfunc=hashfunc(mode), **kw)
    for shingle in shingles(text, n=n, mode=mode, code=code):
        mh.update(shingle)
    return mh.hashvalues


def assert_same(ours, reference):
    assert ours.dtype == reference.dtype
    np.testing.assert_array_equal(ours, reference)


# ---- equality with datasketch ----------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 42])
@pytest.mark.parametrize("num_perm", [16, 128, 256])
@pytest.mark.parametrize("name", list(DOCS))
def test_signature_equals_datasketch(name, num_perm, seed):
    text = DOCS[name]
    ours = signature_of(text, num_perm=num_perm, seed=seed)
    assert_same(ours, datasketch_signature(text, num_perm=num_perm, seed=seed))


@pytest.mark.parametrize("scheme", ["affine32", "affine64", "legacy"])
@pytest.mark.parametrize("name", list(DOCS))
def test_every_scheme_equals_datasketch(name, scheme):
    text = DOCS[name]
    ours = signature_of(text, num_perm=64, seed=3, scheme=scheme)
    assert_same(ours, datasketch_signature(text, num_perm=64, seed=3, scheme=scheme))


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_other_shingle_sizes_equal_datasketch(n):
    for text in DOCS.values():
        assert_same(signature_of(text, n=n), datasketch_signature(text, n=n))


def test_batch_equals_one_by_one_in_any_order():
    texts = list(DOCS.values()) * 2
    batch = text_signatures(texts)
    assert batch.shape == (len(texts), 128)
    for text, row in zip(texts, batch, strict=True):
        assert_same(row, signature_of(text))
    reordered = text_signatures(texts[::-1])
    np.testing.assert_array_equal(reordered, batch[::-1])


def test_small_chunks_give_the_same_signatures(monkeypatch):
    rng = random.Random(3)
    texts = [
        " ".join(rng.choice(VOCAB) for _ in range(rng.choice([0, 1, 4, 5, 6, 40, 300])))
        for _ in range(60)
    ]
    expected = text_signatures(texts, num_perm=32)
    # Chunks of one value, of a few values, and not aligned on documents.
    for chunk_bytes in (1, 32 * 4 * 3, 32 * 4 * 101):
        monkeypatch.setattr(minhash, "CHUNK_BYTES", chunk_bytes)
        np.testing.assert_array_equal(text_signatures(texts, num_perm=32), expected)


def test_signatures_of_hash_arrays():
    texts = [DOCS["sentence"], DOCS["empty"], DOCS["long"]]
    arrays = [shingle_hashes(text) for text in texts]
    np.testing.assert_array_equal(
        signatures(arrays, num_perm=128, seed=1), text_signatures(texts, num_perm=128, seed=1)
    )
    assert signatures([], num_perm=16).shape == (0, 16)
    assert text_signatures([], num_perm=16).shape == (0, 16)


def test_empty_text_is_datasketchs_empty_minhash():
    for text in ("", "  \n", "?!..."):
        assert shingles(text) == []
        assert shingle_hashes(text).size == 0
        assert_same(signature_of(text, num_perm=32), MinHash(num_perm=32).hashvalues)
        assert (signature_of(text, num_perm=32) == 2**32 - 1).all()


# ---- shingles and the shingle hash -----------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 5])
@pytest.mark.parametrize("name", list(DOCS))
def test_bulk_hashes_equal_shingle_hash_of_joined_words(name, n):
    text = DOCS[name]
    bulk = shingle_hashes(text, n=n)
    assert bulk.dtype == np.uint32
    words = normalize_text(text).split()
    expected = [
        shingle_hash(b" ".join(w.encode() for w in words[i : i + n]))
        for i in range(len(words) - n + 1)
    ] or ([shingle_hash(" ".join(words).encode())] if words else [])
    assert bulk.tolist() == expected


def test_shingle_hash_definition():
    def fmix32(x):
        x ^= x >> 16
        x = (x * 0x85EBCA6B) % 2**32
        x ^= x >> 13
        x = (x * 0xC2B2AE35) % 2**32
        return x ^ (x >> 16)

    h = [xxhash.xxh32_intdigest(w) for w in (b"a", b"b", b"c")]
    acc = (h[0] * 0x01000193**2 + h[1] * 0x01000193 + h[2]) % 2**32
    assert shingle_hash(b"a b c") == fmix32(acc)
    assert 0 <= shingle_hash("ünï côdé".encode()) < 2**32
    assert char_shingle_hash(b"hello") == xxhash.xxh32_intdigest(b"hello")


def test_word_shingles_match_dedup():
    for text in DOCS.values():
        assert normalize_text(text) == dedup.normalize_text(text)
        if normalize_text(text):
            assert set(shingles(text, n=3)) == dedup.shingles(text, 3)


def test_short_document_is_one_shingle():
    assert shingles("Hello, big world!") == [b"hello big world"]
    assert shingles("Hello, big world!", n=2) == [b"hello big", b"big world"]


def test_char_mode():
    assert shingles("Hi, there", mode="char") == [b"hi th", b"i the", b" ther", b"there"]
    assert shingles("Hi", mode="char") == [b"hi"]
    assert shingles("", mode="char") == []
    for text in DOCS.values():
        for n in (3, 5):
            hashes = shingle_hashes(text, n=n, mode="char")
            expected = [char_shingle_hash(s) for s in shingles(text, n=n, mode="char")]
            assert hashes.tolist() == expected
            assert_same(
                signature_of(text, n=n, mode="char", seed=9),
                datasketch_signature(text, n=n, mode="char", seed=9),
            )


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        shingle_hashes("a b", mode="sentence")
    with pytest.raises(ValueError):
        signature_of("a b", n=0)
    with pytest.raises(ValueError):
        signature_of("a b", scheme="nope")


# ---- code normalisation ----------------------------------------------------------------


def test_normalize_code_strips_comments_and_docstrings():
    normalised = normalize_code(CODE)
    assert "obvious" not in normalised
    assert "done" not in normalised
    assert "Add two numbers" not in normalised
    assert "triple-quoted" not in normalised
    assert '"#ff0000"' in normalised
    assert normalised.startswith("def add(a, b): return a + b COLOUR =")
    assert "  " not in normalised and "\n" not in normalised
    assert normalize_code("") == ""
    assert normalize_code("x = 1  # unterminated '''") == "x = 1"


def test_code_signature_ignores_comments_and_layout():
    bare = "def add(a, b):\n    return a + b\n\n\nCOLOUR = '#ff0000'\n"
    noisy = (
        'def add(a, b):\n    """Sum."""\n    # why\n    return a   +   b\n'
        "COLOUR = '#ff0000'  # red\n"
    )
    assert normalize_code(bare) == normalize_code(noisy)
    np.testing.assert_array_equal(signature_of(bare, code=True), signature_of(noisy, code=True))
    other = "def add(a, b):\n    return a - b\n\n\nCOLOUR = '#ff0000'\n"
    assert not np.array_equal(signature_of(bare, code=True), signature_of(other, code=True))
    assert_same(signature_of(CODE, code=True), datasketch_signature(CODE, code=True))


# ---- datasketch interoperability -------------------------------------------------------


def test_lsh_finds_a_near_duplicate():
    rng = random.Random(11)
    texts = [" ".join(rng.choice(VOCAB) for _ in range(200)) for _ in range(20)]
    words = texts[4].split()
    words[100] = "changed"
    near = " ".join(words)
    sigs = text_signatures(texts + [near])
    lsh = MinHashLSH(threshold=0.8, num_perm=128)
    for i, sig in enumerate(sigs[:-1]):
        lsh.insert(f"doc{i}", to_datasketch(sig))
    assert lsh.query(to_datasketch(sigs[-1])) == ["doc4"]


def test_jaccard_equals_datasketch():
    rng = random.Random(5)
    base = [rng.choice(VOCAB) for _ in range(120)]
    variant = list(base)
    for position in rng.sample(range(120), 10):
        variant[position] = rng.choice(VOCAB)
    a, b = (" ".join(words) for words in (base, variant))
    for seed in (1, 2):
        ours = to_datasketch(signature_of(a, seed=seed), seed).jaccard(
            to_datasketch(signature_of(b, seed=seed), seed)
        )
        ref_a, ref_b = (MinHash(seed=seed, hashfunc=shingle_hash) for _ in range(2))
        ref_a.update_batch(shingles(a))
        ref_b.update_batch(shingles(b))
        assert ours == ref_a.jaccard(ref_b)
        assert 0.2 < ours < 0.9


def test_to_datasketch_keeps_values_and_scheme():
    sig = signature_of(DOCS["sentence"], seed=4)
    lean = to_datasketch(sig, 4)
    assert lean.seed == 4
    assert lean.scheme == MinHash(num_perm=8).scheme
    np.testing.assert_array_equal(lean.hashvalues, sig)
    legacy = to_datasketch(signature_of("a b c", scheme="legacy"), scheme="legacy")
    assert legacy.scheme == "legacy"


# ---- determinism -----------------------------------------------------------------------


def test_deterministic_across_calls_and_processes():
    first = signature_of(DOCS["unicode"], n=2)
    minhash._WORD_CACHE.clear()
    np.testing.assert_array_equal(signature_of(DOCS["unicode"], n=2), first)
    script = (
        "import sys; from pipeline.stages.minhash import signature_of; "
        "sys.stdout.write(signature_of(sys.stdin.read(), n=2).tobytes().hex())"
    )
    for hash_seed in ("0", "12345"):
        result = subprocess.run(
            [sys.executable, "-c", script],
            input=DOCS["unicode"],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": hash_seed, "PYTHONIOENCODING": "utf-8"},
        )
        assert result.stdout == first.tobytes().hex()
