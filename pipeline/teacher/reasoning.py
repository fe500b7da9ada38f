"""The teacher's thinking, split from its answer, whatever shape the server returns it in.

Reasoning models return their thinking trace in one of these shapes (``split``):

- a field of the message: ``reasoning_content`` (DashScope, DeepSeek, SGLang, llama.cpp
  ``--reasoning-format deepseek``) or ``reasoning`` (vLLM since late 2025, OpenRouter, Ollama's
  OpenAI endpoint); the content is then the answer;
- inline at the start of the content: ``<think>…</think>`` followed by the answer (vLLM /
  SGLang without a reasoning parser, llama.cpp ``--reasoning-format none``), often without the
  opening tag (QwQ, R1 distills and Qwen3-*-Thinking-2507 put ``<think>`` in the prompt);
- none (OpenAI's reasoning models report only ``usage.completion_tokens_details.
  reasoning_tokens``), or an empty ``<think>\\n\\n</think>`` block on a non-thinking turn: no
  thinking.

The thinking never stays in the answer text: every ``<think>…</think>`` block and stray tag is
taken out of it. ``reasoning_complete`` is None when there is no thinking, False when the
answer was cut (``finish_reason == "length"``) before the thinking ended, else True.
"""

from __future__ import annotations

import re
from typing import NamedTuple

OPEN, CLOSE = "<think>", "</think>"
FIELDS = ("reasoning_content", "reasoning")  # message fields that carry the thinking
_BLOCK = re.compile(r"<think>(.*?)</think>", re.DOTALL)


class Split(NamedTuple):
    answer: str  # the visible answer, thinking removed, outer whitespace stripped
    reasoning: str | None  # the thinking, outer whitespace stripped; None when there is none
    complete: bool | None  # False: cut inside the thinking; None: no thinking


def field_reasoning(message: dict) -> str:
    """The thinking a message carries in a field of its own ('' when none)."""
    for name in FIELDS:
        value = message.get(name)
        if isinstance(value, str) and value:
            return value
    return ""


def split(content: str, field: str = "", finish_reason: str = "") -> Split:
    """(answer, reasoning, complete) from a message's content and its reasoning field."""
    content = content or ""
    parts = [field.strip()] if field and field.strip() else []
    cut = finish_reason == "length"
    open_at, close_at = content.find(OPEN), content.find(CLOSE)
    inside = False  # the content ends inside an unclosed thinking block
    if close_at >= 0 and (open_at < 0 or close_at < open_at):
        # No opening tag before the first closing one: the prompt opened the block.
        parts.append(content[:close_at].strip())
        content = content[close_at + len(CLOSE) :]
    elif open_at >= 0 and not content[:open_at].strip() and close_at < 0:
        parts.append(content[open_at + len(OPEN) :].strip())
        content, inside = "", True
    for block in _BLOCK.findall(content):
        parts.append(block.strip())
    content = _BLOCK.sub("", content)
    tail = content.find(OPEN)
    if tail >= 0:  # a block opened after the answer began and never closed
        parts.append(content[tail + len(OPEN) :].strip())
        content, inside = content[:tail], True
    answer = content.replace(CLOSE, "").strip()
    reasoning = "\n\n".join(p for p in parts if p) or None
    if reasoning is None:
        return Split(answer, None, None)
    # Cut before the answer began: inside an open block, or a field trace with no answer yet.
    complete = not (cut and (inside or not answer))
    return Split(answer, reasoning, complete)
