"""The teacher client's failure classes, against a scripted OpenAI-compatible server."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pipeline import records
from pipeline.config import TeacherConfig
from pipeline.teacher.client import OK, TeacherClient, TeacherFatalError
from pipeline.teacher.limits import WorkerGate


def completion(content="{}", finish="stop"):
    return (
        200,
        {},
        {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": finish,
                }
            ],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
        },
    )


def failure(status, headers=None, message="nope"):
    return status, headers or {}, {"error": {"message": message, "type": "x", "code": None}}


class Scripted:
    """Answers each POST with the next scripted response; records the requests it saw."""

    def __init__(self, script):
        self.script = list(script)
        self.requests = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append(
                    {"body": json.loads(body), "auth": self.headers["Authorization"]}
                )
                status, headers, payload = outer.script.pop(0)
                blob = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(blob)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(blob)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class FakeClock:
    """Time that moves only when someone sleeps; records every sleep."""

    def __init__(self):
        self.t = 0.0
        self.sleeps = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


@pytest.fixture
def scripted():
    servers = []

    def make(*script, key="sk-test-secret", **cfg):
        server = Scripted(script)
        servers.append(server)
        clock = FakeClock()
        config = TeacherConfig(retries=cfg.pop("retries", 3), **cfg)
        gate = WorkerGate(config, clock=clock.now, sleep=clock.sleep)
        client = TeacherClient(config, server.url, key, gate=gate, sleep=clock.sleep)
        return client, server, clock.sleeps

    yield make
    for s in servers:
        s.close()


MESSAGES = [{"role": "user", "content": "hi"}]


def test_success_counts_tokens_and_sends_sampling(scripted):
    client, server, _ = scripted(completion('{"a": 1}'), temperature=0.3, max_tokens=99)
    result = client.complete(MESSAGES, seed=42)
    assert result.status == OK and result.content == '{"a": 1}'
    assert (result.prompt_tokens, result.completion_tokens) == (11, 7)
    body = server.requests[0]["body"]
    assert body["seed"] == 42 and body["temperature"] == 0.3 and body["max_tokens"] == 99


def test_429_honours_retry_after_then_succeeds(scripted):
    client, server, sleeps = scripted(failure(429, {"Retry-After": "3"}), completion())
    result = client.complete(MESSAGES, seed=1)
    assert result.status == OK and result.retries == 1 and result.rate_limited == 1
    assert sum(sleeps) == 3.0 and len(server.requests) == 2


def test_5xx_backs_off_exponentially_then_gives_up(scripted):
    client, server, sleeps = scripted(*[failure(503)] * 4, retries=3, backoff_s=1.0)
    result = client.complete(MESSAGES, seed=1)
    assert result.status == records.TEACHER_ERROR and "HTTP 503" in result.detail
    assert len(server.requests) == 4 and result.retries == 3
    assert [0.5 <= s / base <= 1.0 for s, base in zip(sleeps, [1, 2, 4], strict=True)] == [True] * 3


def test_400_is_permanent_and_not_retried(scripted):
    client, server, sleeps = scripted(failure(400, message="bad request"))
    result = client.complete(MESSAGES, seed=1)
    assert result.status == records.TEACHER_ERROR and "HTTP 400" in result.detail
    assert len(server.requests) == 1 and sleeps == []


def test_401_aborts_without_leaking_the_key(scripted):
    client, _, _ = scripted(failure(401, message="Incorrect API key provided: sk-test-secret"))
    with pytest.raises(TeacherFatalError) as info:
        client.complete(MESSAGES, seed=1)
    assert "sk-test-secret" not in str(info.value)


def test_404_aborts_naming_the_model(scripted):
    client, _, _ = scripted(failure(404, message="model nope not found for sk-test-secret"))
    with pytest.raises(TeacherFatalError, match="unknown teacher.model") as info:
        client.complete(MESSAGES, seed=1)
    assert "sk-test-secret" not in str(info.value)


def test_error_detail_never_contains_the_key(scripted):
    client, _, _ = scripted(failure(422, message="bad field for key sk-test-secret"))
    result = client.complete(MESSAGES, seed=1)
    assert "sk-test-secret" not in result.detail and "***" in result.detail


def test_truncated_answer(scripted):
    client, _, _ = scripted(completion('{"a": ', finish="length"))
    result = client.complete(MESSAGES, seed=1)
    assert result.status == records.TRUNCATED


def test_malformed_body_is_a_teacher_error(scripted):
    client, _, _ = scripted((200, {}, {"id": "x", "choices": []}))
    result = client.complete(MESSAGES, seed=1)
    assert result.status == records.TEACHER_ERROR and "malformed response" in result.detail


def test_connection_refused_is_retried_then_reported():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps = []
    client = TeacherClient(
        TeacherConfig(retries=2, timeout_s=2),
        f"http://127.0.0.1:{port}/v1",
        "k",
        sleep=sleeps.append,
    )
    result = client.complete(MESSAGES, seed=1)
    assert result.status == records.TEACHER_ERROR and "APIConnectionError" in result.detail
    assert len(sleeps) == 2


def test_429_pauses_every_request_of_the_worker(scripted):
    client, server, sleeps = scripted(
        failure(429, {"Retry-After": "2"}), completion(), completion()
    )
    assert client.complete(MESSAGES, seed=1).status == OK
    clock_before = sum(sleeps)
    other = TeacherClient(client._cfg, server.url, "k", gate=client.gate)
    assert other.complete(MESSAGES, seed=2).status == OK
    assert clock_before == 2.0 and len(server.requests) == 3


def test_request_rate_limit_spaces_requests():
    clock = FakeClock()
    gate = WorkerGate(TeacherConfig(rpm=60), clock=clock.now, sleep=clock.sleep)
    for _ in range(5):
        assert gate.acquire() == ""
    assert sum(clock.sleeps) == pytest.approx(4.0)  # one burst, then one a second


def test_token_rate_limit_holds_back_after_a_big_answer():
    clock = FakeClock()
    gate = WorkerGate(TeacherConfig(tpm=600), clock=clock.now, sleep=clock.sleep)
    assert gate.acquire() == ""
    gate.charge(100, 60)  # 160 tokens against 60 in the bucket, refilling 10 per second
    assert gate.acquire() == ""
    assert sum(clock.sleeps) == pytest.approx(10.0)


def test_caps_stop_requests_before_they_are_sent(scripted):
    client, server, _ = scripted(completion(), completion(), max_requests=2)
    assert client.complete(MESSAGES, seed=1).status == OK
    assert client.complete(MESSAGES, seed=2).status == OK
    refused = client.complete(MESSAGES, seed=3)
    assert refused.status == records.BUDGET_EXHAUSTED and "max_requests 2" in refused.detail
    assert len(server.requests) == 2 and refused.requests == 0


def test_cost_cap_from_the_price_table():
    cfg = TeacherConfig(
        model="m", max_cost_usd=0.01, prices={"m": {"prompt": 1.0, "completion": 4.0}}
    )
    gate = WorkerGate(cfg, clock=FakeClock().now)
    assert gate.acquire() == ""
    assert gate.charge(2000, 2000) == pytest.approx(0.01)
    assert gate.acquire() == "max_cost_usd 0.01 reached"


def test_caps_are_split_between_workers():
    gate = WorkerGate(TeacherConfig(max_requests=10, workers=5), clock=FakeClock().now)
    assert [gate.acquire() for _ in range(3)] == ["", "", "max_requests 10 reached"]


def test_cache_serves_a_repeated_request_without_paying(scripted, tmp_path):
    from pipeline.teacher.cache import ResponseCache

    client, server, _ = scripted(completion('{"a": 1}'))
    client._cache = ResponseCache(str(tmp_path / "cache"))
    first, second = client.complete(MESSAGES, seed=7), client.complete(MESSAGES, seed=7)
    assert (first.cached, second.cached) == (False, True)
    assert second.content == '{"a": 1}' and len(server.requests) == 1
    for path in (tmp_path / "cache").rglob("*"):
        assert not path.is_file() or b"sk-test-secret" not in path.read_bytes()
