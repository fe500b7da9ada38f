"""Free-form answers: the program to test in a code answer, the final answer of a math one.

Pure text work on the teacher's *visible* answer (its thinking is split off before, see
``pipeline.teacher.reasoning``); nothing here runs or evaluates the text.

``solution_code(answer, entry_point) -> (code, reason, detail)``: the fenced Python block that
defines the entry point. Fences: ```` ```python ````, ```` ```py ````, ```` ```python3 ````,
any case, bare ```` ``` ```` and ``~~~``; blocks tagged with another language (text, bash,
json, output) are never code. Of the Python blocks, those that define ``entry_point`` at top
level (``def`` / ``async def`` at column 0) are candidates: one candidate (or several equal
ones) is the code — helpers and an ``if __name__ == "__main__":`` demo inside it come along;
usage-example blocks that do not define it are ignored. An answer with no fence at all that
is itself Python defining the entry point (a bare-code answer) is taken whole. Reasons:
``no_code_block`` (no Python block), ``no_entry_point`` (Python blocks, none defining it),
``ambiguous_code`` (several different blocks define it).

``final_answer(answer) -> (text, reason, detail)``: the content of the last ``\\boxed{…}``
(braces balanced, nested ones kept), ``\\boxed 5`` (one token), or ``\\fbox{…}``; the ``$``
or ``\\[ \\]`` around it do not matter. Without a box, a last line "Final answer: X" (or "The
final answer is X") is taken. Reason ``no_answer`` otherwise.
"""

from __future__ import annotations

import ast
import re

from pipeline.records import AMBIGUOUS_CODE, NO_ANSWER, NO_CODE_BLOCK, NO_ENTRY_POINT

_FENCE = re.compile(
    r"^[ \t]*(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[\w+#.-]*)[^\n]*\n"  # opening fence + tag
    r"(?P<body>.*?)^[ \t]*(?P=fence)[ \t]*$",
    re.DOTALL | re.MULTILINE,
)
_PYTHON_TAGS = {"", "python", "py", "python3", "py3", "python2", "ipython", "pycon"}
_CODE_START = re.compile(r"^(?:def |async def |class |import |from \w[\w.]* import |@)", re.M)
_MAX_ANSWER_CHARS = 200


def code_blocks(answer: str) -> list[str]:
    """The bodies of the fenced blocks of ``answer`` tagged as Python (or untagged)."""
    return [
        m.group("body") for m in _FENCE.finditer(answer) if m.group("lang").lower() in _PYTHON_TAGS
    ]


def _defines(code: str, name: str) -> bool:
    return re.search(rf"^(?:async\s+)?def\s+{re.escape(name)}\s*\(", code, re.M) is not None


def _is_bare_code(answer: str) -> bool:
    """A whole answer that is Python source: it starts like code and compiles (parse only)."""
    if not _CODE_START.match(answer.lstrip()):
        return False
    try:
        ast.parse(answer)  # parsed, never run
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False
    return True


def solution_code(answer: str, entry_point: str) -> tuple[str | None, str | None, str]:
    """(code to test, None, "") or (None, reason, detail); see the module docstring."""
    blocks = code_blocks(answer)
    if not blocks and "```" not in answer and "~~~" not in answer:
        if _defines(answer, entry_point) and _is_bare_code(answer):
            return answer.strip() + "\n", None, ""
    if not blocks:
        return None, NO_CODE_BLOCK, "the answer has no ```python code block"
    candidates = list(dict.fromkeys(b.strip() for b in blocks if _defines(b, entry_point)))
    if not candidates:
        detail = f"{len(blocks)} Python block(s), none defines {entry_point}()"
        return None, NO_ENTRY_POINT, detail
    if len(candidates) > 1:
        detail = f"{len(candidates)} different code blocks define {entry_point}()"
        return None, AMBIGUOUS_CODE, detail
    return candidates[0] + "\n", None, ""


def _braced(text: str, start: int) -> str | None:
    """The text inside the balanced braces opening at ``text[start]``, or None."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i]
    return None


_BOX = re.compile(r"\\(?:boxed|fbox)\b")
_FINAL = re.compile(r"final\s+answer\s*(?:is\b)?\s*[:=]?[ \t]*(?P<value>[^\n]*)", re.I)


def final_answer(answer: str) -> tuple[str | None, str | None, str]:
    """(final answer text, None, "") or (None, NO_ANSWER, detail); see the module docstring."""
    for match in reversed(list(_BOX.finditer(answer))):
        rest = answer[match.end() :]
        stripped = rest.lstrip()
        if stripped.startswith("{"):
            inner = _braced(answer, len(answer) - len(stripped))
        else:
            token = re.match(r"\s+([^\s$\\]+)", rest)  # \boxed 5
            inner = token.group(1) if token else None
        if inner is not None and inner.strip():
            return _clean(inner), None, ""
    stated = list(_FINAL.finditer(answer))
    if stated:
        value = stated[-1].group("value")
        while (again := _FINAL.search(value)) is not None:  # "Final Answer: The final answer is 4"
            value = again.group("value")
        math = re.match(r"\s*\$+([^$]+)\$", value)  # "$42$. I hope it is correct."
        value = math.group(1) if math else re.split(r"\.\s", value, maxsplit=1)[0]
        if _clean(value):
            return _clean(value), None, ""
    return None, NO_ANSWER, "no \\boxed{} final answer"


def _clean(text: str) -> str:
    text = re.sub(r"\*\*|__", "", text).strip().rstrip(".").strip().strip("$").strip()
    text = re.sub(r"^\\[\[(]|\\[\])]$", "", text).strip().rstrip(".").strip()
    return text[: 4 * _MAX_ANSWER_CHARS]
