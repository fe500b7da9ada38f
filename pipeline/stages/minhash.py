"""MinHash: texts -> shingle hashes -> signatures, in batches, equal to datasketch's.

Contract. For any text and settings, ``signature_of(text, n=N, mode=M, code=C, num_perm=P,
seed=S, scheme=K)`` equals, value for value and dtype for dtype, the ``hashvalues`` of
``datasketch.MinHash(num_perm=P, seed=S, hashfunc=hashfunc(M), scheme=K)`` updated with every
element of ``shingles(text, n=N, mode=M, code=C)``, so the result can go into datasketch's
``MinHashLSH`` or ``LeanMinHash`` (``to_datasketch``) and be compared with sketches built by
datasketch itself. ``scheme=None`` means datasketch's default (``"affine32"`` in datasketch 2.x:
uint32 values; ``"legacy"`` in 1.x: uint64 values below 2**32); ``"affine64"`` works as well.

Text. ``normalize_text`` is dedup's (NFKC, lowercase, Unicode punctuation -> space, whitespace
collapsed to single spaces). ``code=True`` uses ``normalize_code`` instead (triple-quoted strings
and docstrings and ``#`` comments removed, other string literals kept, whitespace collapsed;
case and punctuation kept, as they matter in code).

Shingles. ``mode="word"`` (default): word n-grams (default n = 5) of the normalised text, each
the n words joined by single spaces, UTF-8; ``mode="char"``: character n-grams (default n = 5)
of the normalised text, spaces included, UTF-8. A text shorter than n units is one shingle of
all of it; a text that normalises to "" has no shingles, and its signature is datasketch's
empty MinHash (every value the scheme's maximum, ``2**32 - 1`` for affine32/legacy), so two
empty texts have estimated Jaccard 1.0. Unlike ``dedup.shingles`` (a set, and ``{b""}`` for an
empty text), shingles are listed in order with repeats (the minimum does not care). The hash
differs from the sha1 that ``dedup.signature`` uses: never compare or band signatures of the two.

Shingle hashes (32-bit, usable as datasketch's ``hashfunc``; ``hashfunc(mode)`` picks one):

- ``shingle_hash`` (word mode): split the shingle on b" " into words w_1..w_k, h_i =
  ``xxh32(w_i, seed=0)``; Horner over them modulo 2**32, acc = 0 then acc = acc * 0x01000193 + h_i
  (so acc = sum h_i * 0x01000193**(k - i)); the result is the MurmurHash3 32-bit finalizer of
  acc (x ^= x >> 16; x *= 0x85EBCA6B; x ^= x >> 13; x *= 0xC2B2AE35; x ^= x >> 16, mod 2**32).
  Being a function of the word hashes, the batch path hashes each distinct word once and
  combines consecutive word hashes with NumPy.
- ``char_shingle_hash`` (char mode): ``xxh32(shingle, seed=0)``.

Speed. ``text_signatures`` is the batch path: one pass of Python over the words (a cache of word
hashes), then NumPy for the n-gram combination, datasketch's permutations (taken from datasketch
itself, cached per (num_perm, seed, scheme)) and a per-document minimum (``np.minimum.reduceat``)
in chunks of at most ``CHUNK_BYTES`` of permuted values. ``benchmarks/minhash.py`` measures it.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
from collections.abc import Callable, Sequence

import numpy as np
import xxhash

_MASK32 = 0xFFFFFFFF
_WORD_MULTIPLIER = 0x01000193  # odd (the 32-bit FNV prime), so acc * M is a bijection
# MurmurHash3 finalizers (shift, multiplier, shift, multiplier, shift) per width: the word
# hash's last step and datasketch's pre-mix of affine schemes.
_FMIX = {
    32: (16, 0x85EBCA6B, 13, 0xC2B2AE35, 16),
    64: (33, 0xFF51AFD7ED558CCD, 33, 0xC4CEB9FE1A85EC53, 33),
}

# Permuted values per chunk: bounds the temporaries whatever the batch size.
CHUNK_BYTES = 4 << 20
# The word-hash cache is dropped when it grows beyond this many words (≈ 100 bytes each).
_WORD_CACHE_LIMIT = 1 << 20

MODES = ("word", "char")


# ---- normalisation ---------------------------------------------------------------------


@functools.cache
def _punctuation_table() -> dict[int, str]:
    """Every Unicode punctuation character (categories P*) mapped to a space."""
    return {
        cp: " " for cp in range(sys.maxunicode + 1) if unicodedata.category(chr(cp)).startswith("P")
    }


def normalize_text(text: str) -> str:
    """NFKC, lowercase, punctuation replaced by spaces, whitespace collapsed (as dedup's)."""
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join(text.translate(_punctuation_table()).split())


# Strings are matched so that a "#" inside one is not taken for a comment; only triple-quoted
# strings (docstrings among them) and comments are removed.
_CODE_NOISE = re.compile(
    r"(?P<triple>(?:(?<!\w)[rRbBuUfF]{1,2})?(?:'''[\s\S]*?'''|\"\"\"[\s\S]*?\"\"\"))"
    r"|(?P<string>'(?:\\.|[^'\\\n])*'|\"(?:\\.|[^\"\\\n])*\")"
    r"|(?P<comment>\#[^\n]*)"
)


def _drop_noise(match: re.Match) -> str:
    return match.group() if match.lastgroup == "string" else " "


def normalize_code(text: str) -> str:
    """Python-ish code without ``#`` comments and triple-quoted strings, whitespace collapsed."""
    return " ".join(_CODE_NOISE.sub(_drop_noise, text).split())


def _normalize(text: str, code: bool) -> str:
    return normalize_code(text) if code else normalize_text(text)


def _words(text: str, code: bool) -> list[str]:
    """``_normalize(text, code).split()`` without building the joined string."""
    if code:
        return _CODE_NOISE.sub(_drop_noise, text).split()
    return unicodedata.normalize("NFKC", text).lower().translate(_punctuation_table()).split()


# ---- shingles and their hashes ---------------------------------------------------------


def _fmix32(x: int) -> int:
    s1, m1, s2, m2, s3 = _FMIX[32]
    x ^= x >> s1
    x = (x * m1) & _MASK32
    x ^= x >> s2
    x = (x * m2) & _MASK32
    return x ^ (x >> s3)


def _fmix_array(x: np.ndarray, width: int = 32) -> np.ndarray:
    """The finalizer on a uint32 (width 32) or uint64 (width 64) array, into a new array."""
    s1, m1, s2, m2, s3 = (x.dtype.type(c) for c in _FMIX[width])
    x = x ^ (x >> s1)
    x *= m1
    x ^= x >> s2
    x *= m2
    x ^= x >> s3
    return x


def _combine(word_hashes) -> int:
    acc = 0
    for h in word_hashes:
        acc = (acc * _WORD_MULTIPLIER + int(h)) & _MASK32
    return acc


def shingle_hash(shingle: bytes) -> int:
    """32-bit hash of a word shingle (words joined by b" "): the finalized polynomial of the
    words' xxh32 values (see the module docstring). datasketch ``hashfunc`` for word mode."""
    return _fmix32(_combine(xxhash.xxh32_intdigest(word) for word in shingle.split(b" ")))


def char_shingle_hash(shingle: bytes) -> int:
    """32-bit hash of a character shingle: xxh32 (seed 0). datasketch ``hashfunc`` for char mode."""
    return xxhash.xxh32_intdigest(shingle)


def hashfunc(mode: str = "word") -> Callable[[bytes], int]:
    """The shingle hash that datasketch must use to reproduce signatures of ``mode``."""
    _check(mode, 1)
    return shingle_hash if mode == "word" else char_shingle_hash


def _check(mode: str, n: int) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")


def shingles(text: str, *, n: int = 5, mode: str = "word", code: bool = False) -> list[bytes]:
    """The shingles of the text, in order, UTF-8 (the reference the batch path reproduces)."""
    _check(mode, n)
    norm = _normalize(text, code)
    units = norm.split() if mode == "word" else norm
    if not units:
        return []
    joiner = " " if mode == "word" else ""
    if len(units) < n:
        return [joiner.join(units).encode()]
    return [joiner.join(units[i : i + n]).encode() for i in range(len(units) - n + 1)]


class _WordHashes(dict):
    """word -> xxh32 of its UTF-8, computed on first use."""

    def __missing__(self, word: str) -> int:
        value = self[word] = xxhash.xxh32_intdigest(word.encode())
        return value


_WORD_CACHE = _WordHashes()


def _word_shingle_hashes(texts: Sequence[str], n: int, code: bool):
    """(flat uint32 shingle hashes, int64 offsets) of the texts, word mode."""
    if len(_WORD_CACHE) > _WORD_CACHE_LIMIT:
        _WORD_CACHE.clear()
    all_words: list[str] = []
    counts = np.empty(len(texts), dtype=np.int64)
    for i, text in enumerate(texts):
        words = _words(text, code)
        counts[i] = len(words)
        all_words += words
    words = np.fromiter(
        map(_WORD_CACHE.__getitem__, all_words), dtype=np.uint32, count=len(all_words)
    )
    total_words = len(all_words)
    shingle_counts = np.where(counts >= n, counts - n + 1, np.minimum(counts, 1))
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(shingle_counts, out=offsets[1:])

    # Every window of n consecutive words in the batch, combined at once; windows that cross
    # a document boundary are dropped afterwards.
    windows = max(total_words - n + 1, 0)
    acc = words[:windows].copy()
    for j in range(1, n):
        acc *= np.uint32(_WORD_MULTIPLIER)
        acc += words[j : j + windows]
    doc = np.repeat(np.arange(len(texts)), counts)
    inside = np.flatnonzero(doc[:windows] == doc[n - 1 : n - 1 + windows])

    short = np.flatnonzero((counts > 0) & (counts < n))
    if not short.size:
        return _fmix_array(acc[inside]), offsets
    word_offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(counts, out=word_offsets[1:])
    out = np.empty(int(offsets[-1]), dtype=np.uint32)
    out[inside + (offsets[:-1] - word_offsets[:-1])[doc[inside]]] = acc[inside]
    for d in short:
        out[offsets[d]] = _combine(words[word_offsets[d] : word_offsets[d + 1]])
    return _fmix_array(out), offsets


def _char_shingle_hashes(texts: Sequence[str], n: int, code: bool):
    """(flat uint32 shingle hashes, int64 offsets) of the texts, char mode."""
    arrays = [
        np.fromiter(
            map(char_shingle_hash, shingles(text, n=n, mode="char", code=code)), dtype=np.uint32
        )
        for text in texts
    ]
    return _flatten(arrays)


def _flatten(arrays: Sequence[np.ndarray]):
    offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
    np.cumsum([len(a) for a in arrays], out=offsets[1:])
    flat = np.concatenate(arrays) if arrays else np.empty(0)
    return flat.astype(np.uint32, copy=False), offsets


def _batch_shingle_hashes(texts: Sequence[str], n: int, mode: str, code: bool):
    _check(mode, n)
    if mode == "word":
        return _word_shingle_hashes(texts, n, code)
    return _char_shingle_hashes(texts, n, code)


def shingle_hashes(text: str, *, n: int = 5, mode: str = "word", code: bool = False) -> np.ndarray:
    """uint32 hashes of the text's shingles, in shingle order (``hashfunc(mode)`` of each)."""
    return _batch_shingle_hashes([text], n, mode, code)[0]


# ---- signatures ------------------------------------------------------------------------


@functools.cache
def _datasketch_has_schemes() -> bool:
    from datasketch import MinHash

    return hasattr(MinHash(num_perm=1), "scheme")


@functools.cache
def _scheme(scheme: str | None) -> str:
    """The scheme name, ``None`` resolved to datasketch's default."""
    if _datasketch_has_schemes():
        from datasketch import MinHash

        return MinHash(num_perm=1, scheme=scheme).scheme
    if scheme not in (None, "legacy"):
        raise ValueError(f"datasketch before 2.0 has only the 'legacy' scheme, not {scheme!r}")
    return "legacy"


@functools.cache
def _permutations(num_perm: int, seed: int, scheme: str):
    """datasketch's own ``(a, b)`` and empty hash values, read-only, for these settings."""
    from datasketch import MinHash

    extra = {"scheme": scheme} if _datasketch_has_schemes() else {}
    empty = MinHash(num_perm=num_perm, seed=seed, **extra)
    a, b = (np.array(p) for p in empty.permutations)
    values = np.array(empty.hashvalues)
    for array in (a, b, values):
        array.setflags(write=False)
    return a, b, values


def _permute(hv: np.ndarray, a: np.ndarray, b: np.ndarray, scheme: str) -> np.ndarray:
    """datasketch's permutations of the (pre-mixed) hashes, wrapping as its uint arithmetic
    does: one row per permutation, one column per hash (rows long and contiguous, which the
    per-document minimum below needs to be fast)."""
    phv = np.multiply(a[:, None], hv[None, :])
    phv += b[:, None]
    if scheme == "legacy":
        phv %= np.uint64((1 << 61) - 1)
        phv &= np.uint64(_MASK32)
    return phv


def _premix(hashes: np.ndarray, dtype: np.dtype, scheme: str) -> np.ndarray:
    """What datasketch does to a hashfunc value before permuting it."""
    hv = hashes.astype(dtype)
    return hv if scheme == "legacy" else _fmix_array(hv, 32 if scheme == "affine32" else 64)


def _signatures_flat(
    hashes: np.ndarray, offsets: np.ndarray, num_perm: int, seed: int, scheme: str | None
) -> np.ndarray:
    scheme = _scheme(scheme)
    a, b, empty = _permutations(num_perm, seed, scheme)
    out = np.tile(empty, (len(offsets) - 1, 1))
    nonempty = np.flatnonzero(np.diff(offsets) > 0)
    if not nonempty.size:
        return out
    starts, ends = offsets[nonempty], offsets[nonempty + 1]
    hv = _premix(hashes, a.dtype, scheme)
    rows = max(1, CHUNK_BYTES // (num_perm * a.dtype.itemsize))
    for r0 in range(0, len(hv), rows):
        r1 = min(r0 + rows, len(hv))
        # Documents overlapping [r0, r1): a document split across chunks gets the minimum of
        # its parts.
        lo = int(np.searchsorted(ends, r0, side="right"))
        hi = int(np.searchsorted(starts, r1, side="left"))
        phv = _permute(hv[r0:r1], a, b, scheme)
        mins = np.minimum.reduceat(phv, np.maximum(starts[lo:hi], r0) - r0, axis=1)
        docs = nonempty[lo:hi]
        out[docs] = np.minimum(out[docs], mins.T)
    return out


def signatures(
    hash_arrays: Sequence[np.ndarray],
    num_perm: int = 128,
    seed: int = 1,
    *,
    scheme: str | None = None,
) -> np.ndarray:
    """One signature row per array of shingle hashes: shape (len, num_perm), the scheme's dtype
    (uint32 for affine32, uint64 for legacy and affine64); an empty array gives the empty row."""
    hashes, offsets = _flatten([np.asarray(h) for h in hash_arrays])
    return _signatures_flat(hashes, offsets, num_perm, seed, scheme)


def text_signatures(
    texts: Sequence[str],
    *,
    n: int = 5,
    mode: str = "word",
    code: bool = False,
    num_perm: int = 128,
    seed: int = 1,
    scheme: str | None = None,
) -> np.ndarray:
    """Signatures of many texts at once (the fast path): shape (len(texts), num_perm)."""
    hashes, offsets = _batch_shingle_hashes(texts, n, mode, code)
    return _signatures_flat(hashes, offsets, num_perm, seed, scheme)


def signature_of(
    text: str,
    *,
    n: int = 5,
    mode: str = "word",
    code: bool = False,
    num_perm: int = 128,
    seed: int = 1,
    scheme: str | None = None,
) -> np.ndarray:
    """Signature of one text: ``num_perm`` values."""
    return text_signatures(
        [text], n=n, mode=mode, code=code, num_perm=num_perm, seed=seed, scheme=scheme
    )[0]


def to_datasketch(sig: np.ndarray, seed: int = 1, *, scheme: str | None = None):
    """A ``datasketch.LeanMinHash`` holding the signature (for ``MinHashLSH``, ``jaccard``)."""
    from datasketch import LeanMinHash

    scheme = _scheme(scheme)
    if _datasketch_has_schemes():
        return LeanMinHash(seed=seed, hashvalues=np.asarray(sig), scheme=scheme)
    return LeanMinHash(seed=seed, hashvalues=np.asarray(sig))
