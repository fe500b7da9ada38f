"""Free-form answers: the program to test in a code answer, the final answer of a math one.

Pure text work on the teacher's *visible* answer (its thinking is split off before, see
``pipeline.teacher.reasoning``); nothing here runs or evaluates the text.

``solution_code(answer, entry_point) -> (code, reason, detail)``: the fenced Python block that
defines the entry point. Fences: ```` ```python ````, ```` ```py ````, ```` ```python3 ````,
any case, bare ```` ``` ```` (a first line that only says "python" is the tag) and ``~~~``;
blocks tagged with another language (text, bash, json, output) are never code; a last block
whose closing fence never came is read to the end of the answer (a cut answer never gets
here). Of the Python blocks (dedented, line endings normalised), those that define
``entry_point`` at top level are candidates: one candidate (or several equal ones) is the code
— helpers and an ``if __name__ == "__main__":`` demo inside it come along, and so do earlier
blocks that only define things (functions, classes, imports, constants: helpers written
apart); usage-example blocks are ignored. An answer with no fence at all that is itself Python
defining the entry point (a bare-code answer) is taken whole. Reasons: ``no_code_block`` (no
Python block), ``no_entry_point`` (Python blocks, none defining it), ``ambiguous_code``
(several different blocks define it: which one the answer means is not for us to guess).

``final_answer(answer) -> (text, reason, detail)``: the content of the last ``\\boxed{…}``
(braces balanced, nested ones kept), ``\\boxed 5`` (one token), or ``\\fbox{…}``; the ``$``
or ``\\[ \\]`` around it do not matter. Without a box, the last statement "Final answer: X",
"The (final) answer is X" or "Answer: X" (X on that line or alone on the next) is taken when X
holds a number or a formula. Reason ``no_answer`` otherwise.
"""

from __future__ import annotations

import ast
import re
import textwrap

from pipeline.records import AMBIGUOUS_CODE, NO_ANSWER, NO_CODE_BLOCK, NO_ENTRY_POINT

_FENCE = re.compile(
    r"^[ \t]*(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[\w+#.-]*)[^\n]*\n"  # opening fence + tag
    r"(?P<body>.*?)(?:^[ \t]*(?P=fence)[^\n]*$|\Z)",  # its closing fence, or the end
    re.DOTALL | re.MULTILINE,
)
_PYTHON_TAGS = {"", "python", "py", "python3", "py3", "python2", "ipython", "pycon"}
_CODE_START = re.compile(r"^(?:def |async def |class |import |from \w[\w.]* import |@)", re.M)
_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)
_MAX_ANSWER_CHARS = 200


def code_blocks(answer: str) -> list[str]:
    """The bodies of the fenced blocks of ``answer`` tagged as Python (or untagged), dedented."""
    blocks = []
    for m in _FENCE.finditer(answer.replace("\r\n", "\n")):
        lang, body = m.group("lang").lower(), m.group("body")
        if lang in _PYTHON_TAGS:
            first, _, rest = body.partition("\n")
            if not lang and first.strip().lower() in _PYTHON_TAGS - {""}:
                body = rest  # ```\npython\n...: the tag on the line after the fence
            blocks.append(textwrap.dedent(body).strip())
    return [b for b in blocks if b]


def _defines(code: str, name: str) -> bool:
    return re.search(rf"^(?:async\s+)?def\s+{re.escape(name)}\s*\(", code, re.M) is not None


def _parse(code: str) -> ast.Module | None:
    try:
        return ast.parse(code)  # parsed, never run
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None


def _only_definitions(code: str) -> bool:
    """A helper block: functions, classes, imports and constants, nothing that runs."""
    tree = _parse(code)
    return tree is not None and all(
        isinstance(node, _DEFINITIONS)
        or (isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Constant))
        for node in tree.body
    )


def solution_code(answer: str, entry_point: str) -> tuple[str | None, str | None, str]:
    """(code to test, None, "") or (None, reason, detail); see the module docstring."""
    answer = answer.replace("\r\n", "\n")
    blocks = code_blocks(answer)
    if not blocks and "```" not in answer and "~~~" not in answer:
        bare = answer.strip()
        if _CODE_START.match(bare) and _defines(bare, entry_point) and _parse(bare):
            return bare + "\n", None, ""
    if not blocks:
        return None, NO_CODE_BLOCK, "the answer has no ```python code block"
    candidates = list(dict.fromkeys(b for b in blocks if _defines(b, entry_point)))
    if not candidates:
        detail = f"{len(blocks)} Python block(s), none defines {entry_point}()"
        return None, NO_ENTRY_POINT, detail
    if len(candidates) > 1:
        detail = f"{len(candidates)} different code blocks define {entry_point}()"
        return None, AMBIGUOUS_CODE, detail
    chosen = candidates[0]
    helpers = [b for b in blocks[: blocks.index(chosen)] if _only_definitions(b)]
    return "\n\n\n".join([*dict.fromkeys(helpers), chosen]) + "\n", None, ""


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
# "Final answer: X", "The final answer is X", "the answer is X", "Answer: X" (X on the line, or
# alone on the next one: a display formula).
_STATED = re.compile(
    r"(?:final\s+answer|\banswer)\s*(?:is\b)?\s*[:=]?[ \t]*(?P<value>[^\n]*)"
    r"(?:\n[ \t]*(?P<next>[^\n]+))?",
    re.I,
)


def _stated(answer: str) -> str | None:
    """The value of the last "final answer" statement, when it holds a number or a formula."""
    text = re.sub(r"\*\*|__", "", answer)  # **Final Answer**: 18
    found = list(_STATED.finditer(text))
    if not found:
        return None
    match = found[-1]
    value = match.group("value").strip() or (match.group("next") or "")
    while (again := _STATED.search(value)) is not None:  # "Final Answer: The final answer is 4"
        value = again.group("value")
    math = re.match(r"\s*(\$+|\\\[|\\\()(.+?)(\$+|\\\]|\\\))", value)  # $42$. I hope...
    value = math.group(2) if math else re.split(r"\.(?:\s|$)", value, maxsplit=1)[0]
    value = _clean(value)
    return value if re.search(r"[0-9\\]", value) else None  # not "it works"


def last_box(text: str) -> str | None:
    """The content of the last non-empty ``\\boxed{…}`` / ``\\fbox{…}`` (braces balanced) or
    ``\\boxed 5`` in ``text``, as written; None when there is none."""
    for match in reversed(list(_BOX.finditer(text))):
        rest = text[match.end() :]
        stripped = rest.lstrip()
        if stripped.startswith("{"):
            inner = _braced(text, len(text) - len(stripped))
        else:
            token = re.match(r"\s+([^\s$\\]+)", rest)  # \boxed 5
            inner = token.group(1) if token else None
        if inner is not None and inner.strip():
            return inner
    return None


def final_answer(answer: str) -> tuple[str | None, str | None, str]:
    """(final answer text, None, "") or (None, NO_ANSWER, detail); see the module docstring."""
    value = last_box(answer)
    if value is not None:
        return _clean(value), None, ""
    value = _stated(answer)
    if value:
        return value, None, ""
    return None, NO_ANSWER, "no \\boxed{} final answer"


def _clean(text: str) -> str:
    text = re.sub(r"\*\*|__", "", text).strip().rstrip(".").strip().strip("$").strip()
    text = re.sub(r"^\\[\[(]|\\[\])]$", "", text).strip().rstrip(".").strip()
    return text[: 4 * _MAX_ANSWER_CHARS]
