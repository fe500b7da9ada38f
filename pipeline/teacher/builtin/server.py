"""Built-in teacher: an OpenAI-compatible HTTP server over ``teacher_bank``. Not a language model.

It is the demo, test and benchmark teacher (``synthgen teacher-server``, or in process when the
config says ``base_url: builtin``). It answers synthgen's own prompts from a procedural problem
bank and plants defects on purpose (see ``pipeline.teacher.builtin.bank``).

Contract:

- ``POST /v1/chat/completions``: OpenAI ``chat.completion`` shape. The reply is a deterministic
  function of (server ``seed``, request ``seed``, messages, the options below). Any model name
  and any Authorization header are accepted. Token counts are estimates: ceil(characters / 4)
  of the message texts (prompt) and of everything generated, thinking included (completion);
  ``usage.completion_tokens_details.reasoning_tokens`` whenever there was thinking. When
  ``max_tokens`` (or ``max_completion_tokens``) is smaller than that estimate, the reply is cut
  to ``4 * max_tokens`` characters, thinking first, with ``finish_reason: "length"``, as a real
  server would. Every response carries a top-level ``"synthgen_planted"`` list naming the
  planted defects ("max_tokens" for a cut caused by the request itself); the pipeline never
  reads it.
- ``style`` (json | reasoning_content | reasoning | think | think_open | plain | mixed, default
  mixed) says where the thinking trace goes, ``provider`` (none | openai-reasoning |
  dashscope-thinking) which real server's request rules and errors apply; both are described
  in ``pipeline.teacher.builtin.styles``, the answers and their traps in
  ``pipeline.teacher.builtin.bank``. ``think_tokens`` pads every thinking trace to about that
  many tokens.
- ``stream: true``: ``text/event-stream`` in chunked transfer encoding, ``data: {json}`` events
  of ``chat.completion.chunk`` (same id, created, model in each): a first delta ``{"role":
  "assistant", "content": ""}``, the thinking deltas (in the style's field, or inline in
  ``content``), the content deltas, a chunk with an empty delta and the ``finish_reason`` (and
  ``synthgen_planted``), a ``"choices": []`` chunk with the usage only when
  ``stream_options.include_usage`` is true, then ``data: [DONE]``. Deltas carry
  ``stream_chunk_tokens`` x 4 characters; joined per field they equal the non-streamed message.
- ``token_rate`` > 0 (tokens per second per request): a reply takes completion_tokens /
  token_rate seconds; a non-streamed one is sent after that time, a streamed one spread over
  it in batches about 50 ms apart.
- ``GET /v1/models`` (and ``/v1/models/<id>``): one model, ``synthgen-builtin-teacher``, whose
  description says it is a procedural problem bank, not a language model.
- Errors are OpenAI-style ``{"error": {"message", "type", "code", "param"}}`` (DashScope's shape
  under that provider): 400 for a bad body (not JSON, no messages, a non-integer seed, a bad
  ``response_format``, ...; see ``styles.read_request``), 404 for unknown paths.
- ``faults`` (``"429=0.1,500=0.05,503=0.01,timeout=0.02,retry_after=1,timeout_s=30"``) and
  ``latency`` (``none`` | ``fixed:S`` | ``lognormal:median=S,p99=S``) are drawn per arrival from
  their own seeded generators, independent of content, so a retried request can succeed; they
  apply before a stream starts. A 429 carries ``Retry-After``; a timeout holds the connection
  ``timeout_s`` seconds, then closes it without an answer. Lognormal samples are capped at
  10 x p99.
- ``label_log``: one JSON line per answered chat request: kind, domain, topic, difficulty, index,
  seed, defects, copied_from_index, entry_point, style (the style served; "json" under
  openai-reasoning, whose thinking is never returned) and reasoning_served (a non-empty
  thinking trace was returned). ``request_log``: one JSON line per chat request: t,
  request_hash (sha256 of the canonical body JSON), status (null for a timeout), fault,
  finish_reason. Both are appended under a lock and flushed per line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import IO, Any

from pipeline.teacher.builtin import bank as teacher_bank
from pipeline.teacher.builtin import styles
from pipeline.teacher.builtin.faults import (  # noqa: F401 - Faults, Latency: also named here
    ERROR_STATUSES,
    Faults,
    Latency,
    key_values,
    parse_faults,
    parse_latency,
)

MODEL_ID = "synthgen-builtin-teacher"
NOT_A_MODEL = (
    "synthgen built-in teacher: a procedural problem bank that answers synthgen's own prompts "
    "and plants defects on purpose, for demos, tests and benchmarks; it is not a language model"
)
DEFAULT_PORT = 8765
MAX_BODY_BYTES = 16 * 1024 * 1024
_PACE_S = 0.05  # a paced stream is written in batches this far apart


def _error_body(message: str, type_: str, code: str) -> dict:
    return {"error": {"message": message, "type": type_, "code": code, "param": None}}


_PLANTED_ERRORS = {
    "429": ("rate limit reached (planted fault)", "rate_limit_error", "rate_limit_exceeded"),
    "500": ("internal error (planted fault)", "server_error", "internal_error"),
    "502": ("bad gateway (planted fault)", "server_error", "bad_gateway"),
    "503": ("the teacher is overloaded (planted fault)", "server_error", "overloaded"),
}


class _BadRequest(Exception):
    pass


_NOT_JSON = object()


def canonical_hash(value: Any) -> str:
    """SHA-256 of canonical JSON (sorted keys, compact, UTF-8), as ``records.stable_hash``
    computes it; kept here so the server does not import Beam."""
    blob = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


# --------------------------------------------------------------------------------------------
# Server


class TeacherServer:
    """Runs the built-in teacher on a background thread (``start()`` / ``stop()`` / ``with``)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 0,
        defect_scale: float = 1.0,
        defect_rates: dict[str, float] | None = None,
        latency: str = "none",
        faults: str = "",
        label_log: str | None = None,
        request_log: str | None = None,
        style: str = "mixed",
        provider: str = "none",
        stream_chunk_tokens: int = 4,
        token_rate: float = 0.0,
        think_tokens: int = 0,
    ):
        # Validate everything before a socket exists, so a bad spec fails fast and cleanly.
        self.seed = int(seed)
        self.rates = teacher_bank.resolve_rates(defect_scale, defect_rates)
        self.latency = parse_latency(latency)
        self.faults = parse_faults(faults)
        self.style = _choice("style", style, styles.STYLE_OPTIONS)
        self.provider = _choice("provider", provider, styles.PROVIDERS)
        self.stream_chunk_tokens = _count("stream_chunk_tokens", stream_chunk_tokens, 1)
        self.think_tokens = _count("think_tokens", think_tokens, 0)
        if not isinstance(token_rate, (int, float)) or not 0 <= token_rate < math.inf:
            raise ValueError(f"token_rate must be a number >= 0, got {token_rate!r}")
        self.token_rate = float(token_rate)
        self._host, self._port = host, port
        self._label_path, self._request_path = label_log, request_log
        self._fault_rng = random.Random(f"faults:{self.seed}")
        self._latency_rng = random.Random(f"latency:{self.seed}")
        self._rng_lock = threading.Lock()
        self._log_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._label_file: IO[str] | None = None
        self._request_file: IO[str] | None = None
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stats: dict[str, Any] = {
            "requests": 0,
            "by_status": {},
            "by_fault": {},
            "planted": {},
        }
        self._arrivals = 0

    # lifecycle ----------------------------------------------------------------------------

    def start(self) -> str:
        if self._httpd is not None:
            return self.url
        self._stopping.clear()
        if self._label_path:
            self._label_file = open(self._label_path, "a", encoding="utf-8")
        if self._request_path:
            self._request_file = open(self._request_path, "a", encoding="utf-8")
        self._httpd = _HTTPServer((self._host, self._port), _Handler, self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="synthgen-teacher",
            daemon=True,
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._stopping.set()  # wakes handlers that sleep for latency or hold a timeout
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._state_lock:
            connections = list(self._connections)
        for conn in connections:  # idle keep-alive connections would otherwise linger
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._log_lock:
            for f in (self._label_file, self._request_file):
                if f is not None:
                    f.close()
            self._label_file = self._request_file = None
        self._httpd = self._thread = None

    def __enter__(self) -> TeacherServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the teacher server is not running; call start() first")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def stats(self) -> dict:
        """Counts so far: ``requests``, ``by_status`` ("200", "429", ..., "timeout"),
        ``by_fault`` and ``planted`` (defects planted in answered requests)."""
        with self._state_lock:
            return json.loads(json.dumps(self._stats))

    # per request --------------------------------------------------------------------------

    def _count(self, status: str, fault: str | None, planted: Sequence[str] = ()) -> None:
        with self._state_lock:
            s = self._stats
            s["requests"] += 1
            s["by_status"][status] = s["by_status"].get(status, 0) + 1
            if fault:
                s["by_fault"][fault] = s["by_fault"].get(fault, 0) + 1
            for name in planted:
                s["planted"][name] = s["planted"].get(name, 0) + 1

    def _write(self, which: str, record: dict) -> None:
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._log_lock:
            f = self._label_file if which == "label" else self._request_file
            if f is not None:
                f.write(line)
                f.flush()

    def _draw_arrival(self) -> tuple[str | None, float]:
        with self._rng_lock:
            return self.faults.draw(self._fault_rng), self.latency.sample(self._latency_rng)

    def handle_chat(self, handler: _Handler, raw: bytes) -> None:
        fault, delay = self._draw_arrival()
        try:
            body = json.loads(raw)
            request_hash = canonical_hash(body)
        except ValueError:
            body, request_hash = _NOT_JSON, hashlib.sha256(raw).hexdigest()
        with self._state_lock:
            self._arrivals += 1
            dead = 0 < self.faults.fail_after < self._arrivals
        if dead:
            self._log_request(request_hash, 400, "fail_after")
            message = f"the teacher stopped answering after {self.faults.fail_after} requests"
            handler.send_json(400, _error_body(message, "invalid_request_error", "fail_after"))
            return
        if fault == "timeout":
            self._stopping.wait(self.faults.timeout_s)
            handler.close_connection = True
            self._log_request(request_hash, None, fault)
            return
        if delay:
            self._stopping.wait(delay)
        if fault in ERROR_STATUSES:
            headers = {}
            if fault == "429":
                headers["Retry-After"] = f"{self.faults.retry_after:g}"
            self._log_request(request_hash, int(fault), fault)
            handler.send_json(int(fault), _error_body(*_PLANTED_ERRORS[fault]), headers)
            return
        try:
            response, label, served, ask = self._complete(body)
        except styles.BadRequest as exc:
            self._log_request(request_hash, 400, None)
            handler.send_json(400, exc.body())
            return
        # Logs and counters are written before the answer, so a client that has its answer
        # can already see it accounted for.
        self._write("label", label)
        finish = response["choices"][0]["finish_reason"]
        self._log_request(request_hash, 200, None, response["synthgen_planted"], finish)
        pace = response["usage"]["completion_tokens"] / self.token_rate if self.token_rate else 0
        if not ask.stream:
            if pace and self._stopping.wait(pace):
                handler.close_connection = True
                return
            handler.send_json(200, response)
            return
        head = {k: response[k] for k in ("id", "created", "model", "system_fingerprint")}
        events = styles.stream_events(
            head,
            served,
            finish,
            styles.CHARS_PER_TOKEN * self.stream_chunk_tokens,
            response["usage"] if ask.include_usage else None,
            {"synthgen_planted": response["synthgen_planted"]},
        )
        handler.send_stream(events, pace, self._stopping)

    def _log_request(
        self, request_hash: str, status: int | None, fault, planted=(), finish_reason=None
    ) -> None:
        self._count("timeout" if status is None else str(status), fault, list(planted))
        record = {"t": round(time.time(), 3), "request_hash": request_hash}
        record.update(status=status, fault=fault, finish_reason=finish_reason)
        self._write("request", record)

    def _complete(self, body: Any) -> tuple[dict, dict, tuple, styles.Ask]:
        """(response, label, segments served, request) for one chat request."""
        if body is _NOT_JSON:
            raise styles.BadRequest("the request body is not valid JSON")
        ask = styles.read_request(body, self.provider)
        style, hidden = styles.serving_plan(self.provider, self.style, ask)
        result = teacher_bank.answer(
            ask.messages,
            ask.seed,
            self.seed,
            self.rates,
            style=style,
            json_mode=ask.json_mode,
            think_tokens=self.think_tokens,
        )
        segments, finish, planted = result.segments, result.finish_reason, list(result.defects)
        if ask.thinking_budget and self.provider == "dashscope-thinking":
            segments = styles.cap_thinking(segments, styles.CHARS_PER_TOKEN * ask.thinking_budget)
        limit = ask.max_tokens
        if limit is not None and styles.tokens(styles.total_chars(segments)) > limit:
            segments, finish = styles.cut(segments, styles.CHARS_PER_TOKEN * limit), "length"
            planted.append("max_tokens")
        # OpenAI's reasoning models think (and bill for it) but never return the thinking.
        served = tuple(s for s in segments if not (hidden and s.thinking))
        prompt_chars = sum(len(teacher_bank.user_text([m])) for m in ask.messages)
        response = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or MODEL_ID,
            "system_fingerprint": f"synthgen-bank-{self.seed}",
            "choices": [
                {
                    "index": 0,
                    "message": styles.message(served),
                    "finish_reason": finish,
                    "logprobs": None,
                }
            ],
            "usage": styles.usage(styles.tokens(prompt_chars), segments),
            "synthgen_planted": planted,
        }
        label = {**result.label, "defects": planted}
        label["reasoning_served"] = styles.thinking_chars(served) > 0
        if hidden:
            label["style"] = "json"
        return response, label, served, ask


def _choice(name: str, value: Any, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; expected one of {', '.join(allowed)}")
    return value


def _count(name: str, value: Any, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= 10**6:
        raise ValueError(f"{name} must be an integer from {least} to 1000000, got {value!r}")
    return value


def _batches(events: list[str], pace: float) -> list[tuple[float, list[str]]]:
    """(seconds after the start, events) to write: all at once when unpaced, else the first
    event at once and the rest spread evenly over ``pace`` seconds."""
    if pace <= 0 or len(events) < 2:
        return [(0.0, events)]
    rest = events[1:]
    size = math.ceil(len(rest) / max(1, min(len(rest), math.ceil(pace / _PACE_S))))
    groups = [rest[i : i + size] for i in range(0, len(rest), size)]
    return [(0.0, events[:1])] + [(pace * (k + 1) / len(groups), g) for k, g in enumerate(groups)]


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # the default backlog of 5 resets bursts of new connections

    def __init__(self, address, handler, teacher: TeacherServer):
        self.teacher = teacher
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "synthgen-teacher/1"
    disable_nagle_algorithm = True  # headers and body are separate writes
    timeout = 120  # close keep-alive connections idle for this long
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        with self.server.teacher._state_lock:
            self.server.teacher._connections.add(self.connection)

    def finish(self) -> None:
        with self.server.teacher._state_lock:
            self.server.teacher._connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: request_log is the access log."""

    def send_json(self, status: int, payload: dict, headers: dict | None = None) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def send_stream(self, events: list[str], pace: float, stopping: threading.Event) -> None:
        """Server-sent events in chunked transfer encoding (the connection stays open for the
        next request), one write per batch."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        start = time.monotonic()
        batches = _batches(events, pace)
        for i, (at, batch) in enumerate(batches):
            wait = start + at - time.monotonic()
            if wait > 0 and stopping.wait(wait):
                self.close_connection = True
                return
            data = "".join(batch).encode()
            end = b"0\r\n\r\n" if i == len(batches) - 1 else b""
            self.wfile.write(b"%x\r\n%s\r\n%s" % (len(data), data, end))

    def send_error(self, code: int, message: str | None = None, explain: str | None = None):
        """JSON instead of http.server's HTML error page (bad request lines, unknown methods)."""
        self.close_connection = True
        try:
            error = _error_body(message or explain or "error", "invalid_request_error", str(code))
            self.send_json(code, error)
        except OSError:
            pass

    def _path(self) -> str:
        return self.path.split("?", 1)[0].rstrip("/")

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            raise _BadRequest(f"request body larger than {MAX_BODY_BYTES} bytes")
        return self.rfile.read(length) if length > 0 else b""

    def do_GET(self) -> None:
        path = self._path()
        if path in ("/v1/models", "/models"):
            self.send_json(200, {"object": "list", "data": [_model_card()]})
        elif path in (f"/v1/models/{MODEL_ID}", f"/models/{MODEL_ID}"):
            self.send_json(200, _model_card())
        else:
            self._not_found(path)

    def do_POST(self) -> None:
        try:
            raw = self._read_body()
        except (_BadRequest, ValueError) as exc:
            self.close_connection = True
            self.send_json(400, _error_body(str(exc), "invalid_request_error", "invalid_body"))
            return
        path = self._path()
        if path not in ("/v1/chat/completions", "/chat/completions"):
            self._not_found(path)
            return
        try:
            self.server.teacher.handle_chat(self, raw)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # noqa: BLE001 - a bank bug must answer 500, never kill the thread
            self.close_connection = True
            error = _error_body(f"{type(exc).__name__}: {exc}", "server_error", "internal_error")
            self.send_json(500, error)

    def _not_found(self, path: str) -> None:
        error = _error_body(f"unknown path {path!r}", "invalid_request_error", "not_found")
        self.send_json(404, error)


def _model_card() -> dict:
    return {
        "id": MODEL_ID,
        "object": "model",
        "created": 0,
        "owned_by": "synthgen",
        "is_language_model": False,
        "description": NOT_A_MODEL,
    }


# --------------------------------------------------------------------------------------------
# CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=0, help="server seed (default 0)")
    parser.add_argument(
        "--defect-scale", type=float, default=1.0, help="multiplies every defect rate; 0 = clean"
    )
    parser.add_argument(
        "--defect-rate",
        action="append",
        default=[],
        metavar="NAME=P",
        help="override one rate, e.g. problem.non_english=0.2 (repeatable)",
    )
    parser.add_argument(
        "--latency", default="none", help="none | fixed:S | lognormal:median=S,p99=S"
    )
    parser.add_argument(
        "--faults", default="", help="e.g. 429=0.1,500=0.05,timeout=0.02,retry_after=1,timeout_s=30"
    )
    parser.add_argument("--label-log", default=None, help="JSONL of planted defects per answer")
    parser.add_argument("--request-log", default=None, help="JSONL of every chat request")
    parser.add_argument(
        "--style",
        default="mixed",
        choices=styles.STYLE_OPTIONS,
        help="where the thinking trace goes (default mixed: a per-answer choice)",
    )
    parser.add_argument(
        "--provider",
        default="none",
        choices=styles.PROVIDERS,
        help="imitate a provider's request rules and errors (default none)",
    )
    parser.add_argument(
        "--stream-chunk-tokens", type=int, default=4, help="tokens per streamed delta (default 4)"
    )
    parser.add_argument(
        "--token-rate",
        type=float,
        default=0.0,
        help="output tokens per second per request; 0 = instant (default)",
    )
    parser.add_argument(
        "--think-tokens", type=int, default=0, help="pad every thinking trace to ~N tokens"
    )


def serve_from_args(args: argparse.Namespace) -> int:
    """Run in the foreground until Ctrl-C; 2 on a bad spec, 1 when the port cannot be bound."""
    try:
        overrides = dict(key_values(",".join(getattr(args, "defect_rate", None) or [])))
        server = TeacherServer(
            host=args.host,
            port=args.port,
            seed=args.seed,
            defect_scale=args.defect_scale,
            defect_rates={k: float(v) for k, v in overrides.items()},
            latency=args.latency,
            faults=args.faults,
            label_log=args.label_log,
            request_log=args.request_log,
            style=args.style,
            provider=args.provider,
            stream_chunk_tokens=args.stream_chunk_tokens,
            token_rate=args.token_rate,
            think_tokens=args.think_tokens,
        )
    except ValueError as exc:
        sys.stderr.write(f"teacher-server: {exc}\n")
        return 2
    try:
        url = server.start()
    except OSError as exc:
        sys.stderr.write(f"teacher-server: cannot listen on {args.host}:{args.port}: {exc}\n")
        return 1
    print(
        f"synthgen built-in teacher listening on {url} - a procedural problem bank for demos "
        "and tests, not a language model (Ctrl-C to stop)",
        flush=True,
    )
    # Ctrl-C stops the server even when started from a shell that ignores SIGINT for
    # background jobs (the ignored disposition would be inherited).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.teacher.builtin.server",
        description="synthgen built-in teacher (OpenAI-compatible; not a language model)",
    )
    add_arguments(parser)
    return serve_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
