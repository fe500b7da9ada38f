"""Reasoning teachers over real HTTP: every thinking shape, streamed and not, one cache entry
for both, cuts inside the thinking, provider options and the fail-fast on a repeated 4xx."""

import subprocess
import sys

import pytest

from pipeline import records
from pipeline.config import load_config
from pipeline.stages.generate import attempt_messages, parse_answer, problem_messages
from pipeline.teacher.builtin.server import TeacherServer
from pipeline.teacher.cache import ResponseCache
from pipeline.teacher.client import OK, TeacherClient, TeacherFatalError

SEED = {"domain": "math", "topic": "arithmetic", "difficulty": "easy", "index": 0}
THINKING = ("reasoning_content", "reasoning", "think", "think_open")


def client(server, *settings, cache=None):
    cfg = load_config(None, list(settings)).teacher
    return TeacherClient(cfg, server.url, "key", cache=cache)


@pytest.fixture(scope="module")
def attempt():
    """Messages of an attempt request for a problem the built-in teacher wrote."""
    with TeacherServer(style="json", defect_scale=0) as server:
        result = client(server).complete(problem_messages(SEED), 1)
    fields, reason, _ = parse_answer(result.content, "math_problem")
    assert reason is None
    return attempt_messages({"domain": "math", "statement": fields["statement"]})


@pytest.mark.parametrize("style", [*THINKING, "json", "plain"])
def test_every_shape_splits_the_same_streamed_or_not(attempt, style):
    with TeacherServer(style=style, defect_scale=0) as server:
        plain = client(server).complete(attempt, 7)
        streamed = client(server, "teacher.stream=true").complete(attempt, 7)
    assert plain.status == streamed.status == OK
    fields = ("content", "reasoning", "reasoning_tokens", "reasoning_complete", "finish_reason")
    fields += ("prompt_tokens", "completion_tokens")
    assert {f: getattr(plain, f) for f in fields} == {f: getattr(streamed, f) for f in fields}
    assert "<think>" not in plain.content and "</think>" not in plain.content
    assert "\\boxed" in plain.content and plain.content == plain.content.strip()
    if style in THINKING:
        assert plain.reasoning and plain.reasoning not in plain.content
        assert plain.reasoning_complete is True and plain.reasoning_tokens > 0
    else:
        assert plain.reasoning is None and plain.reasoning_complete is None


def test_streamed_and_plain_requests_share_one_cache_entry(attempt, tmp_path):
    with TeacherServer(style="reasoning") as server:
        first = client(server, cache=ResponseCache(str(tmp_path))).complete(attempt, 3)
        again = client(server, "teacher.stream=true", cache=ResponseCache(str(tmp_path)))
        second = again.complete(attempt, 3)
        assert server.stats()["requests"] == 1
    assert first.requests == 1 and second.cached and second.requests == 0
    assert (second.content, second.reasoning) == (first.content, first.reasoning)
    assert second.reasoning_tokens == first.reasoning_tokens


@pytest.mark.parametrize("stream", ["false", "true"])
def test_a_cut_inside_the_thinking_is_truncated_and_never_paid_twice(attempt, tmp_path, stream):
    cache = ResponseCache(str(tmp_path))
    settings = ["teacher.max_tokens=20", f"teacher.stream={stream}"]
    with TeacherServer(style="think") as server:
        cut = client(server, *settings, cache=cache).complete(attempt, 5)
        assert cut.status == records.TRUNCATED and cut.finish_reason == "length"
        assert cut.content == "" and cut.reasoning and cut.reasoning_complete is False
        assert "inside the thinking" in cut.detail
        again = client(server, *settings, cache=cache).complete(attempt, 5)
        assert again.cached and again.status == records.TRUNCATED  # the same cap: not resent
        wider = client(server, "teacher.max_tokens=8000", cache=cache).complete(attempt, 5)
        assert wider.status == OK and wider.requests == 1 and wider.reasoning_complete is True
        assert server.stats()["requests"] == 2


def test_openai_reasoning_model_fails_fast_quoting_the_server(attempt):
    with TeacherServer(provider="openai-reasoning") as server:
        teacher = client(server)  # max_tokens and temperature 0.8: both refused by such models
        for _ in range(4):
            result = teacher.complete(attempt, 1)
            assert result.status == records.TEACHER_ERROR and "HTTP 400" in result.detail
        with pytest.raises(TeacherFatalError, match="first 5 requests with HTTP 400: Unsupported"):
            teacher.complete(attempt, 1)
        assert server.stats()["requests"] == 5
        fixed = client(
            server,
            "teacher.token_limit_param=max_completion_tokens",
            "teacher.temperature=null",
            "teacher.top_p=null",
            "teacher.reasoning_effort=high",
        ).complete(attempt, 1)
    # It thinks and bills for it, but returns no thinking.
    assert fixed.status == OK and fixed.reasoning is None and fixed.reasoning_tokens > 0


def test_dashscope_thinking_needs_streaming(attempt):
    thinking = "teacher.extra_body={enable_thinking: true, thinking_budget: 50}"
    with TeacherServer(provider="dashscope-thinking") as server:
        refused = client(server, thinking).complete(attempt, 2)
        assert refused.status == records.TEACHER_ERROR
        assert "enable_thinking must be set to false for non-streaming calls" in refused.detail
        streamed = client(server, thinking, "teacher.stream=true").complete(attempt, 2)
    assert streamed.status == OK and streamed.reasoning and streamed.reasoning_tokens <= 50
    assert "\\boxed" in streamed.content


def test_a_run_whose_requests_are_all_refused_stops_with_one_line(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "run", "examples/quickstart.yaml",
         "--output", str(out), "--set", "teacher.builtin_provider=openai-reasoning",
         "--set", "run.problems_per_combo=2", "--set", f"teacher.cache_dir={tmp_path / 'c'}"],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("synthgen: run failed: the teacher refused the first 5 requests")
    assert "Unsupported parameter: 'max_tokens'" in last and "Traceback" not in proc.stderr
    assert not (out / "manifest.json").exists() and not (out / "data").exists()
