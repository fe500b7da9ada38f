"""The built-in teacher's reasoning styles, free-form (v2) answers, streaming and provider rules.

Most tests talk to a real ``TeacherServer`` on 127.0.0.1 (raw HTTP where the wire format is the
point, the ``openai`` client elsewhere); the answer-shape tests call the bank directly. Only the
bank's own (trusted) sources are executed in process.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import math
import random
import re
import time
import urllib.parse

import openai
import pytest
from support import passes

from pipeline.prompts import load_template
from pipeline.teacher.builtin import bank, styles
from pipeline.teacher.builtin import server as ts
from pipeline.teacher.builtin.server import TeacherServer

STYLES = styles.STYLES
THINKING = styles.THINKING_STYLES
CLEAN = bank.resolve_rates(0)


# --------------------------------------------------------------------------------------------
# Helpers


def lenient_passes(solution: str, tests: str) -> bool:
    """``passes``, any exception of the code under test a fail (wrong drafts may raise)."""
    return passes(solution, tests, failures=(Exception,))


def code_problem(index: int = 2, topic: str = "strings") -> dict:
    return bank.build_problem("code", topic, "easy", index).fields


def math_problem(index: int = 1, topic: str = "arithmetic") -> dict:
    return bank.build_problem("math", topic, "medium", index).fields


def attempt_text(domain: str, problem: dict, version: int = 2) -> str:
    if domain == "code":
        return load_template("attempt_code", version).render(**problem)
    return load_template("attempt_math", version).render(statement=problem["statement"])


def problem_text(domain: str, index: int) -> str:
    return load_template(f"problem_{domain}", 1).render(
        topic="lists", difficulty="easy", index=index
    )


def messages(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def body(text: str, seed: int = 1, **extra) -> dict:
    return {"model": "m", "messages": messages(text), "seed": seed, **extra}


def only(name: str) -> dict[str, float]:
    return {**dict.fromkeys(bank.DEFAULT_RATES, 0.0), name: 1.0}


def post(url: str, payload: dict) -> tuple[int, dict, bytes]:
    """(status, headers with lowercase names, body) of one raw POST."""
    where = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(where.hostname, where.port, timeout=10)
    try:
        conn.request("POST", f"{where.path}/chat/completions", json.dumps(payload))
        response = conn.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data
    finally:
        conn.close()


def chat(url: str, payload: dict) -> dict:
    status, _, data = post(url, payload)
    assert status == 200, data
    return json.loads(data)


def stream(url: str, payload: dict) -> list[dict]:
    """The chunks of a streamed reply; checks the SSE framing on the way."""
    status, headers, data = post(url, {**payload, "stream": True})
    assert status == 200, data
    assert headers["content-type"] == "text/event-stream"
    assert headers["transfer-encoding"] == "chunked"
    text = data.decode()
    assert text.endswith("\n\ndata: [DONE]\n\n")
    events = text.split("\n\n")[:-2]
    assert all(e.startswith("data: {") for e in events)
    return [json.loads(e[len("data: ") :]) for e in events]


def joined(chunks: list[dict]) -> dict:
    """The message the deltas add up to."""
    fields: dict[str, str] = {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            for key, value in choice["delta"].items():
                if key != "role":
                    fields[key] = fields.get(key, "") + value
    return {"role": chunks[0]["choices"][0]["delta"]["role"], **fields}


def thinking_of(message: dict) -> str:
    for name in ("reasoning_content", "reasoning"):
        if name in message:
            return message[name]
    content = message["content"]
    if "</think>" not in content:
        return ""
    return content.split("</think>")[0].removeprefix("<think>").strip("\n")


def answer_of(message: dict) -> str:
    return message["content"].split("</think>", 1)[-1].strip()


def json_of(text: str) -> dict:
    return json.loads(text[text.index("{") : text.rindex("}") + 1])


def blocks(text: str) -> list[tuple[str, str]]:
    """(fence info, body) of every fenced block."""
    return re.findall(r"```([^\n`]*)\n(.*?)```", text, re.S)


def solution_blocks(text: str, entry: str) -> list[str]:
    return [code for info, code in blocks(text) if f"def {entry}(" in code]


def last_box(text: str) -> str | None:
    """The value of the last \\boxed / \\fbox, fractions written a/b."""
    at = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if at < 0:
        return None
    rest = text[at + (6 if text.startswith("\\boxed", at) else 5) :]
    if not rest.startswith("{"):
        return rest.split()[0].rstrip("$.") if rest.split() else None
    depth, inner = 0, None
    for i, ch in enumerate(rest):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth == 0:
            inner = rest[1:i]
            break
    if inner is None:
        return None  # cut before the box closed
    return re.sub(r"\\d?frac\{([^}]*)\}\{([^}]*)\}", r"\1/\2", inner)


@pytest.fixture(scope="module")
def servers():
    """One clean teacher per style (and mixed): style -> base URL."""
    with contextlib.ExitStack() as stack:
        yield {
            style: stack.enter_context(TeacherServer(seed=3, defect_scale=0, style=style)).url
            for style in (*STYLES, "mixed")
        }


REQUESTS = {
    "problem": problem_text("code", 4),
    "attempt_v1": attempt_text("math", math_problem(), 1),
    "code_v2": attempt_text("code", code_problem()),
    "math_v2": attempt_text("math", math_problem()),
}


# --------------------------------------------------------------------------------------------
# Segments, cuts, messages (pure)


@pytest.mark.parametrize("style", STYLES)
def test_place_and_cut_keep_generation_order(style):
    segments = styles.place(style, "THINKING", "ANSWER", empty_think=True)
    full = "".join(s.text for s in segments)
    assert full.endswith("ANSWER") and ("THINKING" in full) == (style in THINKING)
    assert full.index("THINKING") < full.index("ANSWER") if "THINKING" in full else True
    for n in range(len(full) + 2):
        assert "".join(s.text for s in styles.cut(segments, n)) == full[:n]
    msg = styles.message(segments)
    if style in ("reasoning_content", "reasoning"):
        assert msg == {"role": "assistant", "content": "ANSWER", style: "THINKING"}
    expected = {
        "json": "ANSWER",
        "think": "<think>\nTHINKING\n</think>\n\nANSWER",
        "think_open": "THINKING\n</think>\n\nANSWER",
        "plain": "<think>\n\n</think>\n\nANSWER",
    }
    if style in expected:
        assert msg == {"role": "assistant", "content": expected[style]}


def test_thinking_budget_cuts_only_the_thinking():
    segments = styles.place("reasoning_content", "x" * 100, "ANSWER")
    assert styles.message(styles.cap_thinking(segments, 40)) == {
        "role": "assistant",
        "content": "ANSWER",
        "reasoning_content": "x" * 40,
    }


def test_paced_streams_are_written_in_batches():
    events = [f"e{i}" for i in range(101)]
    assert ts._batches(events, 0) == [(0.0, events)]
    batches = ts._batches(events, 1.0)
    assert batches[0] == (0.0, ["e0"]) and batches[-1][0] == pytest.approx(1.0)
    assert [e for _, group in batches for e in group] == events
    assert 10 <= len(batches) <= 30  # about 50 ms apart, not one write per chunk


# --------------------------------------------------------------------------------------------
# Streaming over HTTP


@pytest.mark.parametrize("style", [*STYLES, "mixed"])
@pytest.mark.parametrize("kind", REQUESTS)
def test_streamed_deltas_equal_the_non_streamed_message(servers, style, kind):
    url, request = servers[style], body(REQUESTS[kind], seed=7)
    plain = chat(url, request)
    chunks = stream(url, {**request, "stream_options": {"include_usage": True}})
    assert joined(chunks) == plain["choices"][0]["message"]
    assert {(c["id"], c["created"], c["model"], c["object"]) for c in chunks} == {
        (chunks[0]["id"], chunks[0]["created"], "m", "chat.completion.chunk")
    }
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    finish, last = chunks[-2]["choices"][0], chunks[-1]
    assert finish["delta"] == {} and finish["finish_reason"] == "stop"
    assert last["choices"] == [] and last["usage"] == plain["usage"]
    deltas = [c["choices"][0]["delta"] for c in chunks[1:-2]]
    assert all(len(text) <= 16 for d in deltas for text in d.values())
    without = stream(url, request)
    assert all(c["choices"] for c in without) and "usage" not in without[-1]
    assert joined(without) == joined(chunks)


def test_the_openai_client_reads_every_style_streamed():
    text = REQUESTS["code_v2"]
    for style in STYLES:
        with TeacherServer(style=style, defect_scale=0, stream_chunk_tokens=2) as server:
            api = openai.OpenAI(base_url=server.url, api_key="x", max_retries=0, timeout=10)
            plain = api.chat.completions.create(model="m", messages=messages(text), seed=2)
            fields: dict[str, str] = {}
            usage = None
            for chunk in api.chat.completions.create(
                model="m",
                messages=messages(text),
                seed=2,
                stream=True,
                stream_options={"include_usage": True},
            ):
                usage = chunk.usage or usage
                for choice in chunk.choices:
                    delta = {"content": choice.delta.content, **(choice.delta.model_extra or {})}
                    for key, value in delta.items():
                        if value:
                            assert len(value) <= 8
                            fields[key] = fields.get(key, "") + value
            message = plain.choices[0].message
            expected = {"content": message.content, **(message.model_extra or {})}
            assert fields == {k: v for k, v in expected.items() if v}
            assert usage == plain.usage


def test_faults_and_latency_come_before_the_stream():
    with TeacherServer(faults="429=1") as server:
        api = openai.OpenAI(base_url=server.url, api_key="x", max_retries=0, timeout=10)
        with pytest.raises(openai.RateLimitError):
            api.chat.completions.create(model="m", messages=messages("hi"), stream=True)
    with TeacherServer(latency="fixed:0.2") as server:
        start = time.monotonic()
        stream(server.url, body("hi"))
        assert time.monotonic() - start >= 0.2


# --------------------------------------------------------------------------------------------
# Usage, cuts and pacing


@pytest.mark.parametrize("style", STYLES)
def test_usage_counts_thinking_and_answer(servers, style):
    reply = chat(servers[style], body(REQUESTS["math_v2"], seed=4))
    message, usage = reply["choices"][0]["message"], reply["usage"]
    generated = sum(len(message.get(f, "")) for f in ("content", "reasoning_content", "reasoning"))
    assert usage["completion_tokens"] == math.ceil(generated / 4)
    thinking = thinking_of(message)
    assert bool(thinking) == (style in THINKING)
    if thinking:
        assert usage["completion_tokens_details"] == {"reasoning_tokens": -(-len(thinking) // 4)}
    else:
        assert "completion_tokens_details" not in usage


@pytest.mark.parametrize("style", THINKING)
def test_max_tokens_cuts_inside_the_thinking(servers, style):
    request = body(REQUESTS["code_v2"], seed=5)
    full = chat(servers[style], request)["choices"][0]["message"]
    thinking = thinking_of(full)
    cut = chat(servers[style], {**request, "max_completion_tokens": 20})
    assert cut["choices"][0]["finish_reason"] == "length"
    assert cut["synthgen_planted"] == ["max_tokens"]
    message = cut["choices"][0]["message"]
    if style in ("reasoning_content", "reasoning"):
        assert message == {"role": "assistant", "content": "", style: thinking[:80]}
    else:
        prefix = "<think>\n" if style == "think" else ""
        assert message["content"] == (prefix + thinking)[:80]
    assert cut["usage"]["completion_tokens"] == 20
    chunks = stream(servers[style], {**request, "max_completion_tokens": 20})
    assert joined(chunks) == message and chunks[-1]["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize("style", THINKING)
def test_planted_truncation_can_fall_inside_the_thinking(tmp_path, style):
    labels = tmp_path / "labels.jsonl"
    request = body(REQUESTS["code_v2"], seed=6)
    with TeacherServer(style=style, defect_scale=0, think_tokens=1000) as clean:
        thinking = thinking_of(chat(clean.url, request)["choices"][0]["message"])
    options = {"style": style, "think_tokens": 1000, "label_log": str(labels)}
    with TeacherServer(defect_rates=only("attempt.truncated"), **options) as server:
        reply = chat(server.url, request)
        chunks = stream(server.url, request)
    assert joined(chunks) == reply["choices"][0]["message"]
    assert chunks[-1]["synthgen_planted"] == ["truncated"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    message = reply["choices"][0]["message"]
    assert reply["choices"][0]["finish_reason"] == "length"
    assert reply["synthgen_planted"] == ["truncated"]
    served = message.get(style) if style in ("reasoning_content", "reasoning") else None
    if served is not None:
        assert message["content"] == "" and thinking.startswith(served)
        assert len(served) < len(thinking)
    else:
        assert "</think>" not in message["content"]
        assert thinking.startswith(message["content"].removeprefix("<think>\n"))
    label = json.loads(labels.read_text().splitlines()[0])
    assert (label["defects"], label["style"], label["reasoning_served"]) == (
        ["truncated"],
        style,
        True,
    )


def test_think_tokens_pad_the_trace_and_token_rate_paces_the_reply():
    request = body(REQUESTS["math_v2"], seed=2)
    with TeacherServer(style="reasoning", think_tokens=500, token_rate=4000) as server:
        start = time.monotonic()
        reply = chat(server.url, request)
        elapsed = time.monotonic() - start
        reasoning = reply["usage"]["completion_tokens_details"]["reasoning_tokens"]
        assert 500 <= reasoning < 600
        assert elapsed >= reply["usage"]["completion_tokens"] / 4000
        start = time.monotonic()
        chunks = stream(server.url, request)
        assert time.monotonic() - start >= reply["usage"]["completion_tokens"] / 4000
        assert joined(chunks) == reply["choices"][0]["message"]


# --------------------------------------------------------------------------------------------
# Styles: the same answer in every shape


def test_every_style_serves_the_same_answer(servers):
    for kind, text in REQUESTS.items():
        answers = {
            style: answer_of(chat(servers[style], body(text, seed=9))["choices"][0]["message"])
            for style in STYLES
        }
        if kind in ("problem", "attempt_v1"):
            assert len({json.dumps(json_of(a), sort_keys=True) for a in answers.values()}) == 1
        else:
            assert len(set(answers.values())) == 1


def test_mixed_spreads_over_every_style_deterministically_and_labels_it(tmp_path):
    labels = tmp_path / "labels.jsonl"
    with TeacherServer(seed=4, label_log=str(labels)) as server:
        requests = [body(problem_text("math", i)) for i in range(30)]
        requests += [body(REQUESTS["code_v2"], seed=s) for s in range(30)]
        first = [chat(server.url, r) for r in requests]
        again = [chat(server.url, r) for r in requests]
    assert [r["choices"] for r in first] == [r["choices"] for r in again]
    records = [json.loads(line) for line in labels.read_text().splitlines()][: len(requests)]
    assert {r["style"] for r in records} == set(STYLES)
    for record, reply in zip(records, first, strict=True):
        message = reply["choices"][0]["message"]
        assert record["reasoning_served"] == bool(thinking_of(message))
        assert record["reasoning_served"] == (record["style"] in THINKING)
        for field in ("reasoning_content", "reasoning"):
            assert (field in message) == (record["style"] == field)
        inline = message["content"].startswith("<think>\n") and record["style"] != "plain"
        assert inline == (record["style"] == "think")
        if record["style"] == "plain" and "</think>" in message["content"]:
            assert message["content"].startswith(styles.EMPTY_THINK)


def test_exact_duplicates_repeat_the_whole_reply():
    rates = {**dict.fromkeys(bank.DEFAULT_RATES, 0.0), "problem.exact_duplicate": 0.4}
    seen = 0
    for index in range(40):
        result = bank.answer(messages(problem_text("code", index)), index, 0, rates, "mixed")
        if result.defects == ("exact_duplicate",):
            copied = result.label["copied_from_index"]
            original = bank.answer(messages(problem_text("code", copied)), 0, 0, rates, "mixed")
            assert original.segments == result.segments and original.defects == ()
            seen += 1
    assert seen >= 3


def test_plain_answers_are_chatty():
    shapes = set()
    for index, seed in itertools.product(range(40), range(2)):
        result = bank.answer(messages(problem_text("math", index)), seed, 1, CLEAN, "plain")
        content = result.content
        shapes.add(
            (content.startswith(styles.EMPTY_THINK), "```json" in content, content[:1] not in "{`<")
        )
        assert json_of(content) == bank.build_problem("math", "lists", "easy", index, 1).fields
    assert {s[0] for s in shapes} == {True, False} and {s[1] for s in shapes} == {True, False}
    assert True in {s[2] for s in shapes}


# --------------------------------------------------------------------------------------------
# Free-form (v2) answers


def test_v1_and_v2_attempt_prompts_are_recognised():
    for domain in ("code", "math"):
        problem = code_problem() if domain == "code" else math_problem()
        for version in (1, 2):
            req = bank.parse_request(attempt_text(domain, problem, version))
            assert (req.kind, req.domain, req.version) == ("attempt", domain, version)
            assert req.statement == problem["statement"]


def test_free_form_code_answers_vary_and_pass(tmp_path):
    kinds: set[str] = set()
    for index, topic in itertools.product(range(4), ("strings", "lists", "matrices")):
        problem = code_problem(index, topic)
        entry = problem["entry_point"]
        for seed in range(12):
            result = bank.answer(messages(attempt_text("code", problem)), seed, 0, CLEAN)
            text = result.content
            [solution] = solution_blocks(text, entry)
            assert lenient_passes(solution, problem["tests"]), text
            fences = [info for info, _ in blocks(text)]
            kinds.add(f"fence:{fences[0]}")
            kinds.update(k for k in ("_impl(", "__main__") if k in solution)
            kinds.update(f"after:{info}" for info in fences[1:])
    assert kinds >= {f"fence:{f}" for f in ("python", "py", "Python", "python3", "")}
    assert kinds >= {"_impl(", "__main__", "after:python", "after:text"}


@pytest.mark.parametrize(
    "defect", ["wrong_solution", "malformed_json", "ambiguous_code", "truncated", "fake_pass"]
)
def test_free_form_code_defects(defect):
    rates = bank.resolve_rates(1, only(f"attempt.{defect}"))
    for index in range(4):
        problem = code_problem(index)
        entry = problem["entry_point"]
        result = bank.answer(messages(attempt_text("code", problem)), index, 0, rates, "json")
        assert result.defects == (defect,) and result.label["defects"] == [defect]
        found = solution_blocks(result.content, entry)
        if defect == "wrong_solution":
            assert len(found) == 1 and not lenient_passes(found[0], problem["tests"])
        elif defect == "malformed_json":
            assert "```" not in result.content and entry in result.content
        elif defect == "ambiguous_code":
            assert len(found) == 2 and found[0] != found[1]
            assert [info for info, _ in blocks(result.content)] == ["python", "python"]
            assert sorted(lenient_passes(code, problem["tests"]) for code in found) == [False, True]
        elif defect == "truncated":
            assert result.finish_reason == "length" and not found
        else:
            assert len(found) == 1 and re.search(r"(os\._exit|sys\.exit)\(0\)", found[0])


def test_free_form_math_answers_box_the_answer_in_many_forms():
    forms: set[str] = set()
    for index, topic in itertools.product(
        range(12), ("arithmetic", "probability", "number theory")
    ):
        problem = math_problem(index, topic)
        for seed in range(3):
            text = bank.answer(messages(attempt_text("math", problem)), seed, 0, CLEAN).content
            assert last_box(text) == problem["answer"], text
            box_at = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
            tail = text[text.rfind("\n", 0, box_at) + 1 :]  # from the line of the last box
            forms.update(f for f in ("$\\boxed{", "\\[\\boxed{", "\\fbox{", "\\frac{", "\\dfrac{")
                         if f in tail)  # fmt: skip
            forms.update(["after"] if re.search(r"[}$\]]\.? [A-Z]", tail) else [])
    assert forms == {"$\\boxed{", "\\[\\boxed{", "\\fbox{", "\\frac{", "\\dfrac{", "after"}
    assert "Answer: \\boxed 5" in {bank.boxed_line("5", random.Random(i)) for i in range(40)}
    assert not any("\\boxed 1" in bank.boxed_line("12", random.Random(i)) for i in range(40))


def test_every_attempt_defect_is_planted_in_free_form_answers():
    rates = bank.resolve_rates(3.0)
    seen = set()
    for domain in ("code", "math"):
        problem = code_problem(1) if domain == "code" else math_problem(1)
        for seed in range(150):
            result = bank.answer(messages(attempt_text(domain, problem)), seed, 0, rates, "mixed")
            assert result.label["defects"] == list(result.defects)
            seen.update(result.defects)
    assert seen == set(bank.ATTEMPT_DEFECTS)


@pytest.mark.parametrize(
    "defect", ["wrong_solution", "inconsistent_answer", "malformed_json", "truncated"]
)
def test_free_form_math_defects(defect):
    rates = bank.resolve_rates(1, only(f"attempt.{defect}"))
    for index in range(6):
        problem = math_problem(index)
        result = bank.answer(messages(attempt_text("math", problem)), index, 0, rates)
        assert result.defects == (defect,)
        boxed = last_box(result.content)
        if defect in ("malformed_json", "truncated"):
            assert boxed is None
            assert (result.finish_reason == "length") == (defect == "truncated")
            continue
        assert boxed != problem["answer"]
        reasoning = result.content.split("\\boxed")[0].split("\\fbox")[0]
        said = re.findall(r"answer is (-?[\d./]+)\.|Answer: (-?[\d./]+)\.", reasoning)
        stated = [a or b for a, b in said][-1]
        assert stated == (boxed if defect == "wrong_solution" else problem["answer"])


def test_thinking_traps(servers):
    problem = code_problem(1)
    for style in THINKING:
        reply = chat(servers[style], body(attempt_text("code", problem), seed=3))
        message = reply["choices"][0]["message"]
        [draft] = solution_blocks(thinking_of(message), problem["entry_point"])
        [final] = solution_blocks(answer_of(message), problem["entry_point"])
        assert not lenient_passes(draft, problem["tests"]) and lenient_passes(
            final, problem["tests"]
        )
        problem_m = math_problem(2)
        reply = chat(servers[style], body(attempt_text("math", problem_m), seed=3))
        message = reply["choices"][0]["message"]
        assert last_box(thinking_of(message)) not in (None, problem_m["answer"])
        assert last_box(answer_of(message)) == problem_m["answer"]


# --------------------------------------------------------------------------------------------
# response_format, extra keys, request errors


@pytest.mark.parametrize("style", STYLES)
def test_json_mode_serves_bare_json(style):
    fmt = {"type": "json_object"}
    schema = {"type": "json_schema", "json_schema": {"name": "problem", "schema": {}}}
    with TeacherServer(style=style, defect_rates=only("problem.malformed_json")) as server:
        for index, response_format in itertools.product(range(6), (fmt, schema)):
            reply = chat(
                server.url, body(problem_text("code", index), response_format=response_format)
            )
            assert reply["synthgen_planted"] == []
            json.loads(reply["choices"][0]["message"]["content"])
            if style in ("reasoning_content", "reasoning"):
                assert reply["choices"][0]["message"][style]
    with TeacherServer(style=style, defect_rates=only("problem.truncated")) as server:
        reply = chat(server.url, body(problem_text("math", 1), response_format=fmt))
        assert reply["synthgen_planted"] == ["truncated"]


def test_extra_keys_are_accepted_and_ignored(servers):
    request = body(REQUESTS["code_v2"], seed=3)
    extra = {
        "enable_thinking": True,
        "thinking_budget": 5,
        "reasoning_effort": "low",
        "chat_template_kwargs": {"enable_thinking": False},
        "top_k": 20,
        "temperature": 0.6,
    }
    plain = chat(servers["reasoning"], request)["choices"]
    assert chat(servers["reasoning"], {**request, **extra})["choices"] == plain


OPENAI_ERRORS = [
    (
        {"response_format": "json"},
        "Invalid type for 'response_format': expected an object, but got a string instead.",
        "response_format",
        "invalid_type",
    ),
    (
        {"response_format": {"type": "xml"}},
        "Invalid value: 'xml'. Supported values are: 'json_object', 'json_schema', and 'text'.",
        "response_format.type",
        "invalid_value",
    ),
    (
        {"response_format": {"type": "json_schema"}},
        "Missing required parameter: 'response_format.json_schema'.",
        "response_format.json_schema",
        "missing_required_parameter",
    ),
    (
        {"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}},
        "Missing required parameter: 'response_format.json_schema.name'.",
        "response_format.json_schema.name",
        "missing_required_parameter",
    ),
    (
        {"reasoning_effort": "max"},
        "Invalid value: 'max'. Supported values are: "
        "'none', 'minimal', 'low', 'medium', 'high', and 'xhigh'.",
        "reasoning_effort",
        "invalid_value",
    ),
    (
        {"stream_options": {"include_usage": True}},
        "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
        "stream_options",
        "invalid_value",
    ),
]


@pytest.mark.parametrize("extra, message, param, code", OPENAI_ERRORS)
def test_malformed_requests_get_openai_style_400s(servers, extra, message, param, code):
    status, _, data = post(servers["json"], body("hello json", **extra))
    assert status == 400
    assert json.loads(data) == {
        "error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    }


# --------------------------------------------------------------------------------------------
# Providers


def test_openai_reasoning_provider(tmp_path):
    labels = tmp_path / "labels.jsonl"
    text = REQUESTS["math_v2"]
    with TeacherServer(
        provider="openai-reasoning", defect_scale=0, label_log=str(labels)
    ) as server:
        api = openai.OpenAI(base_url=server.url, api_key="x", max_retries=0, timeout=10)
        errors = [
            ({"max_tokens": 100}, "max_tokens", "unsupported_parameter",
             "Unsupported parameter: 'max_tokens' is not supported with this model. "
             "Use 'max_completion_tokens' instead."),
            ({"temperature": 0.8}, "temperature", "unsupported_value",
             "Unsupported value: 'temperature' does not support 0.8 with this model. "
             "Only the default (1) value is supported."),
            ({"top_p": 0.95}, "top_p", "unsupported_value",
             "Unsupported value: 'top_p' does not support 0.95 with this model. "
             "Only the default (1) value is supported."),
            ({"response_format": {"type": "json_object"}}, "messages", None,
             "'messages' must contain the word 'json' in some form, to use 'response_format' "
             "of type 'json_object'."),
        ]  # fmt: skip
        for extra, param, code, message in errors:
            with pytest.raises(openai.BadRequestError) as caught:
                api.chat.completions.create(model="gpt-5", messages=messages(text), **extra)
            assert caught.value.body == {
                "message": message,
                "type": "invalid_request_error",
                "param": param,
                "code": code,
            }
        ok = dict(model="gpt-5", messages=messages(text), seed=1, temperature=1, top_p=1)
        reply = api.chat.completions.create(
            **ok, reasoning_effort="high", max_completion_tokens=4000
        )
        message = reply.choices[0].message
        assert message.model_extra == {} and "</think>" not in message.content
        assert last_box(message.content) == math_problem()["answer"]
        reasoning = reply.usage.completion_tokens_details.reasoning_tokens
        assert reasoning > 0
        visible = math.ceil(len(message.content) / 4)
        assert visible + reasoning - 1 <= reply.usage.completion_tokens <= visible + reasoning
        starved = api.chat.completions.create(**ok, max_completion_tokens=reasoning // 2)
        assert starved.choices[0].finish_reason == "length"
        assert starved.choices[0].message.content == ""
        none = api.chat.completions.create(**ok, reasoning_effort="none")
        assert none.usage.completion_tokens_details is None
        chunks = stream(server.url, {**ok, "stream_options": {"include_usage": True}})
        assert joined(chunks) == {"role": "assistant", "content": message.content}
        assert chunks[-1]["usage"]["completion_tokens_details"] == {"reasoning_tokens": reasoning}
    records = [json.loads(line) for line in labels.read_text().splitlines()]
    assert {(r["style"], r["reasoning_served"]) for r in records} == {("json", False)}


def test_dashscope_thinking_provider():
    text = REQUESTS["code_v2"]
    with TeacherServer(provider="dashscope-thinking", defect_scale=0) as server:
        status, _, data = post(server.url, body(text, enable_thinking=True))
        error = json.loads(data)
        assert status == 400 and error["request_id"] and error["id"].startswith("chatcmpl-")
        assert error["error"] == {
            "code": "invalid_parameter_error",
            "param": None,
            "message": "parameter.enable_thinking must be set to false for non-streaming calls",
            "type": "invalid_request_error",
        }
        json_rule = body("Write a haiku.", response_format={"type": "json_object"})
        status, _, data = post(server.url, json_rule)
        assert status == 400 and json.loads(data)["error"]["message"] == (
            "<400> InternalError.Algo.InvalidParameter: 'messages' must contain the word 'json' "
            "in some form, to use 'response_format' of type 'json_object'."
        )
        quiet = chat(server.url, body(text))["choices"][0]["message"]
        assert set(quiet) == {"role", "content"} and "</think>" not in quiet["content"]
        api = openai.OpenAI(base_url=server.url, api_key="x", max_retries=0, timeout=10)
        thinking = {}
        for budget in (None, 10):
            extra = {"enable_thinking": True, **({"thinking_budget": budget} if budget else {})}
            parts: dict[str, str] = {}
            for chunk in api.chat.completions.create(
                model="qwen3-max", messages=messages(text), seed=1, stream=True, extra_body=extra
            ):
                for choice in chunk.choices:
                    delta = {"content": choice.delta.content, **(choice.delta.model_extra or {})}
                    for key, value in delta.items():
                        parts[key] = parts.get(key, "") + (value or "")
                    finish = choice.finish_reason or None
            thinking[budget] = parts
        assert finish == "stop"
        assert thinking[10]["reasoning_content"] == thinking[None]["reasoning_content"][:40]
        assert thinking[10]["content"] == thinking[None]["content"] == quiet["content"]


def test_cli_options_reach_the_server():
    import argparse

    parser = argparse.ArgumentParser()
    ts.add_arguments(parser)
    args = parser.parse_args(
        "--style think --provider dashscope-thinking --stream-chunk-tokens 2 "
        "--token-rate 50 --think-tokens 300".split()
    )
    assert (args.style, args.provider, args.stream_chunk_tokens) == (
        "think",
        "dashscope-thinking",
        2,
    )
    assert (args.token_rate, args.think_tokens) == (50.0, 300)
    assert parser.parse_args([]).style == "mixed" and parser.parse_args([]).provider == "none"
    assert ts.serve_from_args(parser.parse_args(["--think-tokens", "-1"])) == 2
