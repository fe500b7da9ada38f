"""Packing: tokenized samples -> fixed-length sequences for training without padding waste.

The rule (``tokens.pack: SEQ_LEN``), applied to the samples of one output shard:

- each sample becomes a *document* of its ``input_ids`` followed by one EOS token (the
  tokenizer's end-of-document token, ``<|endoftext|>`` for Qwen2); the EOS has loss 0;
- documents are placed whole, never split or truncated: longest first (ties by id), each into
  the open sequence with the least room that still fits it (best-fit decreasing), else into a
  new sequence; a sample longer than ``SEQ_LEN - 1`` never gets here (the Tokenize stage
  rejects it as ``too_long``);
- inside a sequence documents are ordered by sample id; the rest is padding (EOS ids, loss 0)
  to exactly ``SEQ_LEN`` tokens.

Each packed row stores the boundaries: ``cu_seqlens`` (document starts and the end, as
flash-attention's varlen kernels take them; padding, when there is some, is one more segment
at the end), ``position_ids`` restarting at 0 in every segment, ``sample_ids`` (the data rows
packed, in order), ``num_tokens`` (document tokens, padding excluded) and the run's lineage
(``teacher_model``, ``config_hash``). Unpacking segment
``i < num_samples`` and dropping its final EOS gives sample ``sample_ids[i]``'s ``input_ids``.
"""

from __future__ import annotations

import bisect
import hashlib

import numpy as np


def _best_fit(lengths: list[int], seq_len: int) -> list[list[int]]:
    """Indexes of ``lengths`` per sequence, by best-fit decreasing (``lengths`` pre-sorted)."""
    bins: list[list[int]] = []
    room: list[tuple[int, int]] = []  # (free tokens, bin index), sorted
    for index, length in enumerate(lengths):
        at = bisect.bisect_left(room, (length, -1))
        if at == len(room):
            bins.append([index])
            free, target = seq_len - length, len(bins) - 1
        else:
            free, target = room.pop(at)
            bins[target].append(index)
            free -= length
        bisect.insort(room, (free, target))
    return bins


def pack_rows(samples: list[dict], seq_len: int, eos_id: int, tokenizer: str) -> list[dict]:
    """Packed rows from tokenized samples (each with id, input_ids, loss_mask)."""
    samples = sorted(samples, key=lambda s: (-len(s["input_ids"]), s["id"]))
    packed = []
    for members in _best_fit([len(s["input_ids"]) + 1 for s in samples], seq_len):
        docs = sorted((samples[i] for i in members), key=lambda s: s["id"])
        eos = np.array([eos_id], dtype=np.int32)
        ids = np.concatenate([part for d in docs for part in (d["input_ids"], eos)])
        mask = np.concatenate(
            [part for d in docs for part in (d["loss_mask"], np.zeros(1, np.int8))]
        ).astype(np.int8)
        lengths = [len(d["input_ids"]) + 1 for d in docs]
        used = len(ids)
        if used < seq_len:
            lengths.append(seq_len - used)
        cu_seqlens = np.zeros(len(lengths) + 1, dtype=np.int32)
        np.cumsum(lengths, out=cu_seqlens[1:])
        position_ids = np.arange(seq_len, dtype=np.int32) - np.repeat(cu_seqlens[:-1], lengths)
        sample_ids = [d["id"] for d in docs]
        packed.append(
            {
                "id": hashlib.sha256("\n".join(sample_ids).encode()).hexdigest()[:24],
                "input_ids": np.concatenate([ids, np.full(seq_len - used, eos_id, np.int32)]),
                "loss_mask": np.concatenate([mask, np.zeros(seq_len - used, np.int8)]),
                "position_ids": position_ids,
                "cu_seqlens": cu_seqlens,
                "sample_ids": sample_ids,
                "num_samples": len(docs),
                "num_tokens": used,
                "tokenizer": tokenizer,
                "teacher_model": docs[0].get("teacher_model"),
                "config_hash": docs[0].get("config_hash"),
            }
        )
    return packed


def unpack(row: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """sample id -> (input_ids, loss_mask), cut out of a packed row by its boundaries."""
    cu = row["cu_seqlens"]
    out = {}
    for i, sample_id in enumerate(row["sample_ids"]):
        start, end = int(cu[i]), int(cu[i + 1]) - 1  # without the separating EOS
        out[sample_id] = (
            np.asarray(row["input_ids"][start:end]),
            np.asarray(row["loss_mask"][start:end]),
        )
    return out
