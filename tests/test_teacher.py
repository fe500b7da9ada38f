"""The teacher client's failure classes, against a scripted OpenAI-compatible server."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pipeline import records
from pipeline.config import TeacherConfig
from pipeline.teacher import OK, TeacherClient, TeacherFatalError


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


@pytest.fixture
def scripted():
    servers = []

    def make(*script, key="sk-test-secret", **cfg):
        server = Scripted(script)
        servers.append(server)
        sleeps = []
        client = TeacherClient(
            TeacherConfig(retries=cfg.pop("retries", 3), **cfg),
            server.url,
            key,
            sleep=sleeps.append,
        )
        return client, server, sleeps

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
    assert sleeps == [3.0] and len(server.requests) == 2


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
    assert result.status == records.TEACHER_ERROR and "no choices" in result.detail


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
