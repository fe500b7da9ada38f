"""How the built-in teacher puts a reply on the wire like real reasoning servers. Pure, no I/O.

Styles (``TeacherServer(style=...)``) say where the thinking trace goes:

- ``json``: no thinking; the content is exactly what the prompt asks for.
- ``reasoning_content``: thinking in ``message.reasoning_content`` (DashScope, DeepSeek, SGLang,
  llama.cpp ``--reasoning-format deepseek``); the content is the answer.
- ``reasoning``: thinking in ``message.reasoning`` (vLLM since late 2025, OpenRouter, Ollama).
- ``think``: inline, ``<think>\\n{thinking}\\n</think>\\n\\n{answer}``.
- ``think_open``: inline without the opening tag (QwQ, R1 distills, Qwen3-Thinking-2507),
  ``{thinking}\\n</think>\\n\\n{answer}``.
- ``plain``: no thinking but chattier: JSON answers sometimes in prose and/or a ```json fence,
  and a third of answers open with an empty ``<think>\\n\\n</think>\\n\\n`` (the non-thinking
  turn of a hybrid model).
- ``mixed``: every answer draws one of the six above, equally likely, from its own seeded
  stream (the bank says which key: ``pipeline.teacher.builtin.bank``).

A reply is a tuple of ``Segment``s in generation order (thinking first). A cut at N characters
(a planted truncation, ``max_tokens``) keeps the first N characters across the segments, so it
may fall inside the thinking. ``message`` joins the segments per field; ``stream_events`` sends
the same text in deltas, so the deltas of each field joined are exactly that field of the
non-streamed message. Tokens are ceil(characters / 4) throughout.

Providers (``TeacherServer(provider=...)``), checked by ``read_request``:

- ``none``: any sampling parameter is accepted.
- ``openai-reasoning`` (gpt-5, o-series): ``max_tokens`` and a ``temperature`` / ``top_p`` other
  than 1 get OpenAI's 400s; the thinking is generated and counted
  (``usage.completion_tokens_details.reasoning_tokens``) but never returned;
  ``reasoning_effort: "none"`` means no thinking at all.
- ``dashscope-thinking`` (Qwen3 on DashScope's compatible mode): ``enable_thinking: true``
  without ``stream: true`` gets DashScope's 400; with it the thinking comes in
  ``reasoning_content`` and ``thinking_budget`` (tokens) ends it early, the answer following
  in full; without it there is no thinking.

In every mode: ``response_format`` ``json_object`` / ``json_schema`` makes JSON answers bare
JSON (no fence, no prose, no inline thinking; the bank plants no malformed JSON under it); a
malformed ``response_format``, a ``reasoning_effort`` outside none/minimal/low/medium/high/xhigh
and ``stream_options`` without ``stream`` get 400. Other extra keys (``enable_thinking`` under
other providers, ``chat_template_kwargs``, ``top_k``, ...) are accepted and ignored.

Field names: vLLM's move from ``reasoning_content`` to ``reasoning`` (vllm-project/vllm#27755,
#27752); DashScope's ``enable_thinking`` / ``thinking_budget`` / ``reasoning_content`` (Model
Studio "Deep thinking", help.aliyun.com/en/model-studio/deep-thinking). Error texts, as the
real servers send them (quoted in public issue threads):
OpenAI's unsupported_parameter / unsupported_value (griptape-ai/ComfyUI-Griptape#312,
gabrii/Cursor-Azure-GPT-5#33), invalid_value (epuerta9/deep-research-py#19) and the json-word
rule (0zd3m1r/koreader-xray-plugin#18); DashScope's error body and enable_thinking text
(infiniflow/ragflow#8972, OpenBMB/UltraRAG#287) and its json-word text (agno-agi/agno#5317).
The missing-parameter and invalid-type texts follow OpenAI's pattern but are not quoted.
"""

from __future__ import annotations

import json
import math
import random
import uuid
from collections.abc import Sequence
from typing import Any, NamedTuple

STYLES = ("json", "reasoning_content", "reasoning", "think", "think_open", "plain")
STYLE_OPTIONS = (*STYLES, "mixed")
THINKING_STYLES = ("reasoning_content", "reasoning", "think", "think_open")
INLINE_STYLES = ("think", "think_open", "plain")  # put text around a JSON answer in the content
PROVIDERS = ("none", "openai-reasoning", "dashscope-thinking")
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
RESPONSE_FORMATS = ("json_object", "json_schema", "text")
EMPTY_THINK = "<think>\n\n</think>\n\n"
CHARS_PER_TOKEN = 4


def tokens(chars: int) -> int:
    return math.ceil(chars / CHARS_PER_TOKEN)


# --------------------------------------------------------------------------------------------
# Segments


class Segment(NamedTuple):
    field: str  # "content" | "reasoning_content" | "reasoning"
    text: str
    thinking: bool = False  # part of the thinking trace (counted as reasoning tokens)


def pick_style(style: str, rng: random.Random) -> str:
    return STYLES[rng.randrange(len(STYLES))] if style == "mixed" else style


def place(style: str, thinking: str, answer: str, empty_think: bool = False) -> tuple:
    """The segments of one reply; ``empty_think`` only matters for ``plain``."""
    if style in ("reasoning_content", "reasoning") and thinking:
        return (Segment(style, thinking, True), Segment("content", answer))
    if style == "think" and thinking:
        parts = [("<think>\n", False), (thinking, True), ("\n</think>\n\n", False)]
    elif style == "think_open" and thinking:
        parts = [(thinking, True), ("\n</think>\n\n", False)]
    elif style == "plain" and empty_think:
        parts = [(EMPTY_THINK, False)]
    else:
        parts = []
    return tuple(Segment("content", t, th) for t, th in parts) + (Segment("content", answer),)


_JSON_LEADS = (
    "Here is the JSON object:",
    "Sure! Here's the JSON you asked for:",
    "Below is the requested object.",
    "Here you go:",
)
_JSON_TAILS = (
    "Let me know if you would like a harder variant.",
    "The statement is self-contained, so it can be used as is.",
    "I kept the field names exactly as requested.",
)


def chatty_json(text: str, rng: random.Random) -> tuple[str, int]:
    """A JSON answer as a chatty model sends it: (text, where the JSON ends)."""
    if not text.startswith("```") and rng.random() < 0.5:
        text = f"```json\n{text}\n```"
    lead = rng.choice(_JSON_LEADS) + "\n\n" if rng.random() < 0.5 else ""
    tail = "\n\n" + rng.choice(_JSON_TAILS) if rng.random() < 0.4 else ""
    return lead + text + tail, len(lead) + len(text)


def cut(segments: Sequence[Segment], chars: int) -> tuple:
    """The first ``chars`` characters of a reply, across its segments."""
    out, left = [], chars
    for seg in segments:
        if left <= 0:
            break
        out.append(seg if len(seg.text) <= left else seg._replace(text=seg.text[:left]))
        left -= len(seg.text)
    return tuple(out)


def cap_thinking(segments: Sequence[Segment], chars: int) -> tuple:
    """The thinking ended after ``chars`` characters; everything else kept (a thinking budget)."""
    out, left = [], chars
    for seg in segments:
        if seg.thinking:
            seg = seg._replace(text=seg.text[: max(left, 0)])
            left -= len(seg.text)
        out.append(seg)
    return tuple(s for s in out if s.text or not s.thinking)


def total_chars(segments: Sequence[Segment]) -> int:
    return sum(len(s.text) for s in segments)


def thinking_chars(segments: Sequence[Segment]) -> int:
    return sum(len(s.text) for s in segments if s.thinking)


def message(segments: Sequence[Segment]) -> dict:
    """The assistant message: content, and a reasoning field when thinking is in one."""
    fields: dict[str, list[str]] = {"content": []}
    for seg in segments:
        fields.setdefault(seg.field, []).append(seg.text)
    msg = {"role": "assistant", "content": "".join(fields.pop("content"))}
    msg.update((name, "".join(parts)) for name, parts in fields.items() if any(parts))
    return msg


def usage(prompt_tokens: int, generated: Sequence[Segment]) -> dict:
    """Completion tokens count thinking and answer alike, served or not (OpenAI's hidden
    reasoning is billed too); reasoning_tokens whenever there was thinking."""
    completion = tokens(total_chars(generated))
    out: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": prompt_tokens + completion,
    }
    if thinking_chars(generated):
        out["completion_tokens_details"] = {"reasoning_tokens": tokens(thinking_chars(generated))}
    return out


# --------------------------------------------------------------------------------------------
# Requests


class BadRequest(Exception):
    """A 400 with an OpenAI-style error body (or DashScope's, which adds ids)."""

    def __init__(self, message: str, param=None, code="invalid_request", dashscope=False):
        super().__init__(message)
        self.param, self.code, self.dashscope = param, code, dashscope

    def body(self) -> dict:
        error = {"message": str(self), "type": "invalid_request_error"}
        error.update(param=self.param, code=self.code)
        if not self.dashscope:
            return {"error": error}
        request_id = str(uuid.uuid4())
        return {"error": error, "id": f"chatcmpl-{request_id}", "request_id": request_id}


class Ask(NamedTuple):
    """What a chat request asks for, validated."""

    messages: list
    seed: int | None = None
    max_tokens: int | None = None  # max_completion_tokens, else max_tokens
    stream: bool = False
    include_usage: bool = False
    json_mode: bool = False  # response_format json_object / json_schema
    enable_thinking: bool = False  # DashScope's switch (only dashscope-thinking reads it)
    thinking_budget: int | None = None  # dashscope-thinking only
    reasoning_effort: str | None = None


def read_request(body: Any, provider: str = "none") -> Ask:
    """Validate a chat request body for ``provider``; BadRequest (a 400) otherwise."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty list")
    for m in messages:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise BadRequest("every message must be an object with a 'role'")
    seed = body.get("seed")
    if seed is not None and not _is_int(seed):
        raise BadRequest("'seed' must be an integer")
    limits = {k: body.get(k) for k in ("max_completion_tokens", "max_tokens")}
    for name, value in limits.items():
        if value is not None and not (_is_int(value) and value >= 1):
            raise BadRequest(f"'{name}' must be a positive integer", name, "invalid_value")
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise BadRequest("'stream' must be a boolean", "stream", "invalid_type")
    options = body.get("stream_options")
    if options is not None and not stream:
        message = "The 'stream_options' parameter is only allowed when 'stream' is enabled."
        raise BadRequest(message, "stream_options", "invalid_value")
    if options is not None and not isinstance(options, dict):
        raise BadRequest(_invalid_type("stream_options", options), "stream_options", "invalid_type")
    effort = body.get("reasoning_effort")
    if effort is not None and effort not in REASONING_EFFORTS:
        message = _invalid_value(effort, REASONING_EFFORTS)
        raise BadRequest(message, "reasoning_effort", "invalid_value")
    budget = body.get("thinking_budget") if provider == "dashscope-thinking" else None
    if budget is not None and not (_is_int(budget) and budget >= 1):
        raise BadRequest(
            "parameter.thinking_budget must be a positive integer",  # not DashScope's own text
            None,
            "invalid_parameter_error",
            dashscope=True,
        )
    ask = Ask(
        messages=messages,
        seed=seed,
        max_tokens=limits["max_completion_tokens"] or limits["max_tokens"],
        stream=bool(stream),
        include_usage=bool((options or {}).get("include_usage")),
        json_mode=_json_mode(body.get("response_format")),
        enable_thinking=body.get("enable_thinking") is True,
        thinking_budget=budget,
        reasoning_effort=effort,
    )
    _check_provider(body, ask, provider)
    return ask


def _check_provider(body: dict, ask: Ask, provider: str) -> None:
    json_object = (body.get("response_format") or {}).get("type") == "json_object"
    if provider == "openai-reasoning":
        if body.get("max_tokens") is not None:
            raise BadRequest(
                "Unsupported parameter: 'max_tokens' is not supported with this model. "
                "Use 'max_completion_tokens' instead.",
                "max_tokens",
                "unsupported_parameter",
            )
        for name in ("temperature", "top_p"):
            value = body.get(name)
            if value is not None and value != 1:
                raise BadRequest(
                    f"Unsupported value: '{name}' does not support {json.dumps(value)} with this "
                    "model. Only the default (1) value is supported.",
                    name,
                    "unsupported_value",
                )
        if json_object and not _mentions_json(ask.messages):
            raise BadRequest(
                "'messages' must contain the word 'json' in some form, to use 'response_format' "
                "of type 'json_object'.",
                "messages",
                None,
            )
    elif provider == "dashscope-thinking":
        if ask.enable_thinking and not ask.stream:
            raise BadRequest(
                "parameter.enable_thinking must be set to false for non-streaming calls",
                None,
                "invalid_parameter_error",
                dashscope=True,
            )
        if json_object and not _mentions_json(ask.messages):
            raise BadRequest(
                "<400> InternalError.Algo.InvalidParameter: 'messages' must contain the word "
                "'json' in some form, to use 'response_format' of type 'json_object'.",
                None,
                "invalid_parameter_error",
                dashscope=True,
            )


def serving_plan(provider: str, style: str, ask: Ask) -> tuple[str, bool]:
    """(style to render, thinking hidden) for a request under ``provider``."""
    if provider == "openai-reasoning":
        return ("json" if ask.reasoning_effort == "none" else "reasoning_content"), True
    if provider == "dashscope-thinking":
        return ("reasoning_content" if ask.enable_thinking else "json"), False
    return style, False


def _json_mode(fmt: Any) -> bool:
    if fmt is None:
        return False
    if not isinstance(fmt, dict):
        raise BadRequest(_invalid_type("response_format", fmt), "response_format", "invalid_type")
    kind = fmt.get("type")
    if kind is None:
        raise BadRequest(_missing("response_format.type"), "response_format.type", _MISSING)
    if kind not in RESPONSE_FORMATS:
        message = _invalid_value(kind, RESPONSE_FORMATS)
        raise BadRequest(message, "response_format.type", "invalid_value")
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        param = "response_format.json_schema"
        if not isinstance(spec, dict):
            raise BadRequest(_missing(param), param, _MISSING)
        if not isinstance(spec.get("name"), str) or not spec["name"]:
            raise BadRequest(_missing(f"{param}.name"), f"{param}.name", _MISSING)
        if "schema" in spec and not isinstance(spec["schema"], dict):
            message = _invalid_type(f"{param}.schema", spec["schema"])
            raise BadRequest(message, f"{param}.schema", "invalid_type")
    return kind != "text"


_MISSING = "missing_required_parameter"


def _missing(param: str) -> str:
    return f"Missing required parameter: '{param}'."


def _invalid_value(value: Any, allowed: Sequence[str]) -> str:
    listed = ", ".join(f"'{a}'" for a in allowed[:-1]) + f", and '{allowed[-1]}'"
    quoted = f"'{value}'" if isinstance(value, str) else json.dumps(value)[:40]
    return f"Invalid value: {quoted}. Supported values are: {listed}."


def _invalid_type(param: str, value: Any) -> str:
    kinds = {str: "a string", list: "an array", bool: "a boolean", int: "an integer"}
    got = kinds.get(type(value), "a number" if isinstance(value, float) else "an object")
    return f"Invalid type for '{param}': expected an object, but got {got} instead."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _mentions_json(messages: list) -> bool:
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        if isinstance(content, str) and "json" in content.lower():
            return True
    return False


# --------------------------------------------------------------------------------------------
# Streaming


def stream_events(
    head: dict,
    segments: Sequence[Segment],
    finish_reason: str,
    chunk_chars: int,
    usage_: dict | None = None,
    extra: dict | None = None,
) -> list[str]:
    """The ``data: ...`` events of a streamed reply, ``[DONE]`` last.

    ``head`` holds id, object, created, model (and system_fingerprint), the same in every
    chunk. Each delta is built from a prefix made once and one ``json.dumps`` of its text, so
    a long reply costs little CPU. ``extra`` (top-level keys) goes on the finish chunk; a usage
    chunk with ``choices: []`` comes before ``[DONE]`` only when ``usage_`` is given.
    """
    prefix = "data: " + json.dumps({**head, "object": "chat.completion.chunk"})[:-1]
    tail = ',"logprobs":null,"finish_reason":null}]}\n\n'
    events = [f'{prefix},"choices":[{{"index":0,"delta":{{"role":"assistant","content":""}}{tail}']
    for name, text in _merged(segments):
        start = f'{prefix},"choices":[{{"index":0,"delta":{{"{name}":'
        for i in range(0, len(text), chunk_chars):
            events.append(f"{start}{json.dumps(text[i : i + chunk_chars])}}}{tail}")
    finish = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish_reason}
    extras = "".join(f",{json.dumps(k)}:{json.dumps(v)}" for k, v in (extra or {}).items())
    events.append(f'{prefix},"choices":[{json.dumps(finish)}]{extras}}}\n\n')
    if usage_ is not None:
        events.append(f'{prefix},"choices":[],"usage":{json.dumps(usage_)}}}\n\n')
    events.append("data: [DONE]\n\n")
    return events


def _merged(segments: Sequence[Segment]) -> list[tuple[str, str]]:
    """Adjacent segments of one field as one text (the deltas do not show segment borders)."""
    out: list[tuple[str, str]] = []
    for seg in segments:
        if out and out[-1][0] == seg.field:
            out[-1] = (seg.field, out[-1][1] + seg.text)
        elif seg.text:
            out.append((seg.field, seg.text))
    return out
