"""The teacher response cache: keys, modes, the max_tokens reuse rule, atomicity, no secrets."""

import json
import pickle
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipeline.config import TeacherConfig
from pipeline.stages.generate import problem_messages
from pipeline.teacher import cache as cache_mod
from pipeline.teacher.cache import (
    ResponseCache,
    base_url_family,
    default_cache_dir,
    entry_from_result,
    request_key,
)
from pipeline.teacher.client import TeacherClient, TeacherResult, sampling_params

MESSAGES = [{"role": "user", "content": "Write a problem about strings. — ünïcode"}]
SAMPLING = {"temperature": 0.8, "top_p": 1.0, "max_tokens": 2048, "seed": 7}


def key(**changes) -> str:
    args = {
        "base_url_family": "https://api.example.com/v1",
        "model": "m",
        "messages": MESSAGES,
        "sampling": SAMPLING,
    }
    args.update(changes)
    return request_key(**args)


def entry(
    content="answer", finish="stop", completion=100, max_tokens=200, allow_truncated=None
) -> dict:
    e = {
        "content": content,
        "finish_reason": finish,
        "prompt_tokens": 12,
        "completion_tokens": completion,
        "max_tokens": max_tokens,
        "model": "m",
        "created": 1_700_000_000,
    }
    if allow_truncated is not None:
        e["allow_truncated"] = allow_truncated
    return e


def files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


# --------------------------------------------------------------------------------------------
# Pure functions


def test_default_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SYNTHGEN_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert default_cache_dir() == str(tmp_path / "home" / ".cache" / "synthgen" / "teacher")
    monkeypatch.setenv("XDG_CACHE_HOME", "")
    assert default_cache_dir() == str(tmp_path / "home" / ".cache" / "synthgen" / "teacher")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == str(tmp_path / "xdg" / "synthgen" / "teacher")
    monkeypatch.setenv("SYNTHGEN_CACHE_DIR", str(tmp_path / "explicit"))
    assert default_cache_dir() == str(tmp_path / "explicit")


@pytest.mark.parametrize(
    "url, family",
    [
        ("builtin", "builtin"),
        ("https://api.openai.com/v1", "https://api.openai.com/v1"),
        ("https://API.OpenAI.com/v1/", "https://api.openai.com/v1"),
        ("HTTPS://api.openai.com:443/v1//", "https://api.openai.com/v1"),
        ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
        ("http://localhost:80/v1", "http://localhost/v1"),
        ("https://user:sk-secret@host.example/v1?key=sk-secret#x", "https://host.example/v1"),
        ("http://[::1]:9000/v1/", "http://[::1]:9000/v1"),
        ("  https://host.example  ", "https://host.example"),
        ("https://host.example/Path/V1", "https://host.example/Path/V1"),
    ],
)
def test_base_url_family(url, family):
    assert base_url_family(url) == family


@pytest.mark.parametrize("url", ["", "api.openai.com/v1", "http://", "http://host:notaport/v1"])
def test_base_url_family_rejects_urls_without_scheme_or_host(url):
    with pytest.raises(ValueError):
        base_url_family(url)


def test_request_key_is_stable_and_sensitive_to_what_changes_the_answer():
    k = key()
    assert len(k) == 64 and k == key()
    assert k == key(messages=json.loads(json.dumps(MESSAGES)))
    assert k == key(sampling=dict(reversed(list(SAMPLING.items()))))
    assert k == key(sampling={**SAMPLING, "max_tokens": 16})
    assert k == key(sampling={k2: v for k2, v in SAMPLING.items() if k2 != "max_tokens"})
    different = [
        key(messages=[{"role": "user", "content": "Write a problem about lists."}]),
        key(messages=[*MESSAGES, {"role": "assistant", "content": "ok"}]),
        key(sampling={**SAMPLING, "temperature": 0.7}),
        key(sampling={**SAMPLING, "top_p": 0.9}),
        key(sampling={**SAMPLING, "seed": 8}),
        key(model="other"),
        key(base_url_family="builtin"),
        key(base_url_family="https://api.example.com/v2"),
    ]
    assert len({k, *different}) == len(different) + 1


def test_request_key_matches_the_clients_sampling_params():
    cfg = TeacherConfig()
    short = TeacherConfig(max_tokens=64)
    assert key(sampling=sampling_params(cfg, 3)) == key(sampling=sampling_params(short, 3))
    assert key(sampling=sampling_params(cfg, 3)) != key(sampling=sampling_params(cfg, 4))


@pytest.mark.parametrize(
    "bad",
    [
        None,
        [],
        {k: v for k, v in entry().items() if k != "content"},
        {**entry(), "api_key": "sk-x"},
        {**entry(), "completion_tokens": "100"},
        {**entry(), "completion_tokens": -1},
        {**entry(), "max_tokens": True},
        {**entry(), "allow_truncated": "yes"},
    ],
)
def test_put_rejects_malformed_entries(tmp_path, bad):
    cache = ResponseCache(str(tmp_path))
    with pytest.raises(ValueError):
        cache.put(key(), bad)
    assert files(tmp_path) == []


def test_invalid_mode_and_key():
    with pytest.raises(ValueError, match="cache mode must be one of"):
        ResponseCache("/tmp/x", mode="yes")
    with pytest.raises(ValueError):
        ResponseCache("/tmp/x").get("../../etc/passwd", 10)


def test_entry_from_result_refuses_failures():
    ok = TeacherResult("ok", raw_content="c", finish_reason="stop", completion_tokens=3)
    made = entry_from_result(ok, model="m", max_tokens=10, clock=lambda: 5.5)
    assert made == {
        "content": "c",
        "finish_reason": "stop",
        "prompt_tokens": 0,
        "completion_tokens": 3,
        "max_tokens": 10,
        "model": "m",
        "created": 5,
    }
    with pytest.raises(ValueError):
        entry_from_result(
            TeacherResult("teacher_error", detail="HTTP 500"), model="m", max_tokens=9
        )


# --------------------------------------------------------------------------------------------
# The cache on a local root


def test_round_trip_layout_and_no_leftovers(tmp_path):
    cache = ResponseCache(str(tmp_path))
    k = key()
    assert cache.get(k, 200) is None
    cache.put(k, entry())
    assert cache.get(k, 200) == entry()
    assert files(tmp_path) == [tmp_path / k[:2] / f"{k}.json"]
    assert json.loads((tmp_path / k[:2] / f"{k}.json").read_text("utf-8")) == entry()
    assert cache.stats() == {
        "mode": "on",
        "hits": 1,
        "misses": 1,
        "writes": 1,
        "corrupt": 0,
        "skipped": 0,
        "write_errors": 0,
    }
    # Another instance (a restart, another worker) sees the same entry.
    assert ResponseCache(str(tmp_path)).get(k, 200) == entry()


def test_survives_pickling(tmp_path):
    cache = pickle.loads(pickle.dumps(ResponseCache(str(tmp_path))))
    cache.put(key(), entry())
    assert cache.get(key(), 200) == entry() and cache.hits == 1


def test_read_only_reads_but_never_writes(tmp_path):
    ResponseCache(str(tmp_path)).put(key(), entry())
    before = {p: p.read_bytes() for p in files(tmp_path)}
    cache = ResponseCache(str(tmp_path), mode="read-only")
    assert cache.get(key(), 200) == entry()
    cache.put(key(), entry(content="new"))
    cache.put(key(messages=[]), entry())
    assert {p: p.read_bytes() for p in files(tmp_path)} == before
    assert (cache.hits, cache.writes) == (1, 0)


def test_refresh_never_reads_but_overwrites(tmp_path):
    ResponseCache(str(tmp_path)).put(key(), entry(content="stale"))
    cache = ResponseCache(str(tmp_path), mode="refresh")
    assert cache.get(key(), 200) is None
    cache.put(key(), entry(content="fresh"))
    assert (cache.hits, cache.misses, cache.writes) == (0, 0, 1)
    assert ResponseCache(str(tmp_path)).get(key(), 200)["content"] == "fresh"


def test_off_does_nothing(tmp_path):
    ResponseCache(str(tmp_path)).put(key(), entry())
    before = {p: p.read_bytes() for p in files(tmp_path)}
    cache = ResponseCache(str(tmp_path), mode="off")
    assert cache.get(key(), 200) is None
    cache.put(key(), entry(content="new"))
    cache.put(key(messages=[]), entry())
    assert {p: p.read_bytes() for p in files(tmp_path)} == before
    assert cache.stats()["hits"] == cache.stats()["misses"] == cache.stats()["writes"] == 0


@pytest.mark.parametrize(
    "requested, served", [(150, True), (100, True), (200, True), (5000, True), (50, False)]
)
def test_finished_answer_is_reused_while_it_fits(tmp_path, requested, served):
    cache = ResponseCache(str(tmp_path))
    cache.put(key(), entry(finish="stop", completion=100, max_tokens=200))
    assert (cache.get(key(), requested) is not None) == served


def test_finished_answer_without_usage_is_bounded_by_its_own_max_tokens(tmp_path):
    cache = ResponseCache(str(tmp_path))
    cache.put(key(), entry(finish="stop", completion=0, max_tokens=200))
    assert cache.get(key(), 200) is not None and cache.get(key(), 300) is not None
    assert cache.get(key(), 199) is None


@pytest.mark.parametrize(
    "allow, requested, served",
    [(None, 100, False), (False, 100, False), (True, 100, True), (True, 150, False)],
)
def test_truncated_answer_only_with_allow_truncated_and_same_max_tokens(
    tmp_path, allow, requested, served
):
    cache = ResponseCache(str(tmp_path))
    cache.put(key(), entry(finish="length", completion=100, max_tokens=100, allow_truncated=allow))
    assert (cache.get(key(), requested) is not None) == served


def test_unservable_truncated_answer_does_not_clobber_a_finished_one(tmp_path):
    cache = ResponseCache(str(tmp_path))
    cache.put(key(), entry(finish="stop", completion=100, max_tokens=200))
    # max_tokens=50 misses, the teacher is asked again and cuts the answer off.
    assert cache.get(key(), 50) is None
    cache.put(key(), entry(finish="length", completion=50, max_tokens=50))
    assert cache.skipped == 1
    assert cache.get(key(), 200)["finish_reason"] == "stop"


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"{",
        b"\xff\xfe\x00garbage",
        b"[]",
        b"null",
        b'{"content": "x"}',
        json.dumps({**entry(), "completion_tokens": "many"}).encode(),
        json.dumps(entry())[:-10].encode(),
    ],
)
def test_corrupt_entry_is_a_miss(tmp_path, blob):
    cache = ResponseCache(str(tmp_path))
    k = key()
    (tmp_path / k[:2]).mkdir()
    (tmp_path / k[:2] / f"{k}.json").write_bytes(blob)
    assert cache.get(k, 200) is None
    assert (cache.misses, cache.corrupt) == (1, 1)
    cache.put(k, entry())  # and the next answer repairs it
    assert cache.get(k, 200) == entry()


def test_unreadable_entry_is_a_miss(tmp_path):
    cache = ResponseCache(str(tmp_path))
    k = key()
    (tmp_path / k[:2] / f"{k}.json").mkdir(parents=True)  # a directory where the file should be
    assert cache.get(k, 200) is None and cache.misses == 1


def test_failed_write_is_counted_not_raised(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    cache = ResponseCache(str(blocker / "cache"))
    cache.put(key(), entry())
    assert (cache.writes, cache.write_errors) == (0, 1)
    assert cache.get(key(), 200) is None


def test_concurrent_puts_and_gets(tmp_path):
    cache = ResponseCache(str(tmp_path))
    shared = key()
    # Large entries make a torn read likely if the write were not atomic.
    versions = [entry(content=f"{i}" * 200_000, completion=100) for i in range(8)]
    own = [key(sampling={**SAMPLING, "seed": 100 + i}) for i in range(8)]
    errors, seen = [], []
    start = threading.Barrier(8)

    def work(i):
        try:
            start.wait()
            for round_ in range(15):
                cache.put(shared, versions[(i + round_) % 8])
                got = cache.get(shared, 200)
                seen.append(got)
                cache.put(own[i], versions[i])
                assert cache.get(own[i], 200) == versions[i]
        except Exception as exc:  # collected: an assertion in a thread would otherwise vanish
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert seen and all(got in versions for got in seen)
    assert cache.stats()["corrupt"] == 0 and cache.write_errors == 0
    assert cache.writes == 8 * 15 * 2
    assert cache.hits + cache.misses == 8 * 15 * 2
    assert not [p for p in files(tmp_path) if ".tmp-" in p.name]


# --------------------------------------------------------------------------------------------
# No secrets on disk


class _Teacher:
    """A minimal OpenAI-compatible server on 127.0.0.1 that echoes the request into its answer,
    so a key that leaked into the request body would also reach the content."""

    def __init__(self):
        self.auth = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.auth.append(self.headers["Authorization"])
                content = json.dumps({"echo": body["messages"], "seed": body["seed"]})
                blob = json.dumps(
                    {
                        "id": "x",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body["model"],
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": content},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(blob)))
                self.end_headers()
                self.wfile.write(blob)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_api_key_never_reaches_the_cache(tmp_path):
    secret = "sk-test-CACHE-SECRET-0123456789abcdef"
    cfg = TeacherConfig(base_url="http://127.0.0.1/v1", max_tokens=256, retries=0)
    cache = ResponseCache(str(tmp_path))
    teacher = _Teacher()
    with teacher as url:
        # Credentials embedded in the URL must not leak into the family either.
        family = base_url_family(url.replace("http://", f"http://u:{secret}@"))
        assert secret not in family and family == base_url_family(url)
        client = TeacherClient(cfg, url, api_key=secret)
        try:
            for index in range(3):
                messages = problem_messages(
                    {"domain": "code", "topic": "strings", "difficulty": "easy", "index": index}
                )
                result = client.complete(messages, seed=index)
                assert result.status == "ok", result.detail
                k = request_key(family, cfg.model, messages, sampling_params(cfg, index))
                cache.put(k, entry_from_result(result, model=cfg.model, max_tokens=cfg.max_tokens))
                assert cache.get(k, cfg.max_tokens)["content"] == result.content
        finally:
            client.close()
    assert teacher.auth and all(secret in header for header in teacher.auth)  # it was in play
    stored = files(tmp_path)
    assert len(stored) == 3
    for path in stored:
        raw = path.read_bytes()
        assert secret.encode() not in raw and b"CACHE-SECRET" not in raw
        assert b"Bearer" not in raw and b"Authorization" not in raw
        assert set(json.loads(raw)) <= set(cache_mod.ENTRY_FIELDS) | set(cache_mod.OPTIONAL_FIELDS)
