"""Teacher response cache: request key -> stored answer, so no request is paid for twice.

Content addressed and shared across restarts and runners: entries live under any root Beam's
``FileSystems`` understands (a local path, ``gs://``, ``s3://``) as
``<root>/<key[:2]>/<key>.json``. No listing, ever: one read per ``get``, one write per ``put``.

- ``request_key(base_url_family, model, messages, sampling)``: sha256 of the canonical JSON of
  the request without ``max_tokens``, so raising ``max_tokens`` reuses answers that fitted.
- ``ResponseCache(root, mode)``: ``on`` (read and write), ``read-only``, ``refresh`` (write but
  never read: overwrite stale entries), ``off``.
- ``get(key, max_tokens)`` serves an entry only if it would also have been the answer under the
  requested ``max_tokens`` (see ``usable``); a missing, unreadable or corrupt entry is a miss and
  never raises.
- ``put(key, entry)`` writes ``<path>.tmp-<random>`` and renames it over ``<path>``, so a reader
  sees a whole entry or none and a killed run leaves at most a tmp file.

An entry holds exactly ``ENTRY_FIELDS`` (plus the optional ``OPTIONAL_FIELDS``: the
``allow_truncated`` flag and the thinking the server returned in a field of its own): the answer
as sent, its token usage, the request's ``max_tokens``, the model and a timestamp. It never
holds an API key or any header: ``put`` rejects any other field, the key is not part of the
request key and ``base_url_family`` drops credentials embedded in the URL.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import threading
import time
from urllib.parse import urlsplit

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from pipeline.records import TRUNCATED

CACHE_FORMAT = 1
BUILTIN = "builtin"
MODES = ("on", "read-only", "refresh", "off")
_READ_MODES = {"on", "read-only"}
_WRITE_MODES = {"on", "refresh"}

# Field -> accepted types. bool is rejected for the int fields explicitly (it subclasses int).
ENTRY_FIELDS = {
    "content": (str,),
    "finish_reason": (str,),
    "prompt_tokens": (int,),
    "completion_tokens": (int,),
    "max_tokens": (int,),
    "model": (str,),
    "created": (int, float),
}
OPTIONAL_FIELDS = {"allow_truncated": (bool,), "reasoning": (str,), "reasoning_tokens": (int,)}
_INT_FIELDS = ("prompt_tokens", "completion_tokens", "max_tokens")
_HEX = frozenset("0123456789abcdef")
# teacher.OK and records.TRUNCATED; "ok" is spelled out so that pipeline.teacher.client can import
# this module without a cycle.
_CACHEABLE_STATUS = {"ok", TRUNCATED}


def default_cache_dir() -> str:
    explicit = os.environ.get("SYNTHGEN_CACHE_DIR")
    if explicit:
        return os.path.expanduser(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")  # the XDG spec treats an empty value as unset
    base = os.path.expanduser(xdg) if xdg else os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "synthgen", "teacher")


def base_url_family(base_url: str) -> str:
    """The part of a base URL that decides which server answers: the key's ``base``.

    ``"builtin"`` stays ``"builtin"`` (its port changes every run). Otherwise scheme + host
    (+ non-default port) + path, lowercased scheme and host, no trailing slash; user info,
    query and fragment are dropped, so a key embedded in the URL never reaches the cache.
    """
    text = base_url.strip()
    if text == BUILTIN:
        return BUILTIN
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    host = parts.hostname  # lowercased, without user info or brackets
    if not scheme or not host:
        raise ValueError(f"teacher base URL {base_url!r} needs a scheme and a host")
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"teacher base URL {base_url!r} has an invalid port") from None
    default_port = {"http": 80, "https": 443}.get(scheme)
    netloc = host if port is None or port == default_port else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# Not part of the key: the token limit (an answer that fitted a smaller one is the answer to a
# larger one, see ``usable``) and how the answer is delivered.
_UNKEYED = {"max_tokens", "max_completion_tokens", "stream", "stream_options"}


def request_key(base_url_family: str, model: str, messages: list[dict], sampling: dict) -> str:
    """sha256 hex of the request as the cache sees it: every field but ``_UNKEYED``."""
    payload = {
        "v": CACHE_FORMAT,
        "base": base_url_family,
        "model": model,
        "messages": messages,
        "sampling": {k: v for k, v in sampling.items() if k not in _UNKEYED},
    }
    return hashlib.sha256(_canonical(payload).encode("utf-8")).hexdigest()


def entry_from_result(
    result, *, model: str, max_tokens: int, allow_truncated: bool = False, clock=time.time
) -> dict:
    """The cache entry for a ``TeacherResult`` (duck-typed); only answers are cacheable.

    Raises ValueError for a failed call (status ``teacher_error``): caching a failure would
    serve it forever.
    """
    if result.status not in _CACHEABLE_STATUS:
        raise ValueError(f"only answered requests are cached, not status {result.status!r}")
    entry = {
        "content": result.raw_content,
        "finish_reason": result.finish_reason,
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "max_tokens": max_tokens,
        "model": model,
        "created": int(clock()),
    }
    if allow_truncated:
        entry["allow_truncated"] = True
    if result.raw_reasoning:
        entry["reasoning"] = result.raw_reasoning
    if result.reasoning_tokens is not None:
        entry["reasoning_tokens"] = result.reasoning_tokens
    return entry


def entry_problem(entry) -> str | None:
    """Why ``entry`` is not a well-formed cache entry, or None."""
    if not isinstance(entry, dict):
        return f"entry must be a dict, got {type(entry).__name__}"
    missing = sorted(set(ENTRY_FIELDS) - set(entry))
    if missing:
        return f"entry lacks {', '.join(missing)}"
    unknown = sorted(set(entry) - set(ENTRY_FIELDS) - set(OPTIONAL_FIELDS))
    if unknown:
        return f"entry has unknown field(s) {', '.join(unknown)}; only the answer is stored"
    for name, types in {**ENTRY_FIELDS, **OPTIONAL_FIELDS}.items():
        if name in entry and not isinstance(entry[name], types):
            return f"entry.{name} has type {type(entry[name]).__name__}"
    for name in _INT_FIELDS:
        if isinstance(entry[name], bool) or entry[name] < 0:
            return f"entry.{name} must be a non-negative int"
    return None


def usable(entry: dict, max_tokens: int) -> bool:
    """Would ``entry`` also be the answer to the same request with this ``max_tokens``?

    A finished answer (any finish_reason but "length") is, if it fits: its completion_tokens
    <= max_tokens. When the server reported no usage (0 tokens for a non-empty answer) the
    request's own max_tokens bounds it instead. A truncated answer only for the very same
    max_tokens, and only when it was stored with ``allow_truncated``.
    """
    if entry["finish_reason"] == "length":
        return bool(entry.get("allow_truncated")) and entry["max_tokens"] == max_tokens
    length = entry["completion_tokens"]
    if length == 0 and entry["content"]:
        length = entry["max_tokens"]
    return length <= max_tokens


def _check_key(key: str) -> None:
    if not (isinstance(key, str) and len(key) == 64 and set(key) <= _HEX):
        raise ValueError(f"cache key must be 64 lowercase hex characters, got {key!r}")


class ResponseCache:
    """A directory of entries under ``root``. Thread-safe; picklable (counters travel along).

    ``hits``, ``misses`` and ``writes`` are plain ints; also ``corrupt`` (read but not a valid
    entry: counted in misses too), ``skipped`` (puts of entries that could never be served:
    truncated without ``allow_truncated``) and ``write_errors`` (a failed write loses only the
    cache entry, never the answer; the stats make a broken cache visible). In ``refresh`` and
    ``off`` modes ``get`` does not read and counts nothing.
    """

    def __init__(self, root: str, mode: str = "on"):
        if mode not in MODES:
            raise ValueError(f"cache mode must be one of {', '.join(MODES)}; got {mode!r}")
        if not root:
            raise ValueError("cache root must be a non-empty path or URL")
        self.root = root if "://" in root else os.path.expanduser(root)
        self.mode = mode
        self.hits = self.misses = self.writes = 0
        self.corrupt = self.skipped = self.write_errors = 0
        self._lock = threading.Lock()
        self._made_dirs: set[str] = set()

    def __getstate__(self):
        state = self.__dict__.copy()
        del state["_lock"], state["_made_dirs"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._made_dirs = set()

    def _count(self, **deltas: int) -> None:
        with self._lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)

    def path(self, key: str) -> str:
        _check_key(key)
        return FileSystems.join(self.root, key[:2], f"{key}.json")

    def get(self, key: str, max_tokens: int) -> dict | None:
        path = self.path(key)
        if self.mode not in _READ_MODES:
            return None
        try:
            with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
                blob = f.read()
        except Exception:
            # Not found or unreadable; GCS and S3 raise their own client errors, not OSError.
            self._count(misses=1)
            return None
        try:
            entry = json.loads(blob.decode("utf-8"))
        except ValueError:  # UnicodeDecodeError and JSONDecodeError both
            entry = None
        if entry_problem(entry) is not None:
            self._count(misses=1, corrupt=1)
            return None
        if not usable(entry, max_tokens):
            self._count(misses=1)
            return None
        self._count(hits=1)
        return entry

    def put(self, key: str, entry: dict) -> None:
        """Store ``entry`` (see ``entry_from_result``); ValueError if it is not a valid entry."""
        path = self.path(key)
        problem = entry_problem(entry)
        if problem is not None:
            raise ValueError(problem)
        if self.mode not in _WRITE_MODES:
            return
        if entry["finish_reason"] == "length" and not entry.get("allow_truncated"):
            # Never served, and it would overwrite a finished answer stored under the same key.
            self._count(skipped=1)
            return
        blob = _canonical(entry).encode("utf-8")
        tmp = f"{path}.tmp-{secrets.token_hex(8)}"
        try:
            self._mkdirs(FileSystems.join(self.root, key[:2]))
            with FileSystems.create(
                tmp, mime_type="application/json", compression_type=CompressionTypes.UNCOMPRESSED
            ) as f:
                f.write(blob)
            FileSystems.rename([tmp], [path])
        except Exception:
            # Any filesystem's error (GCS and S3 raise their own client errors): the answer
            # was paid for and is returned anyway; only its cache entry is lost, and counted.
            self._count(write_errors=1)
            self._discard(tmp)
            return
        self._count(writes=1)

    def _mkdirs(self, directory: str) -> None:
        if directory in self._made_dirs:
            return
        try:
            FileSystems.mkdirs(directory)
        except OSError:
            # Mostly "already exists" (another thread, process or run made it); any real
            # problem resurfaces when the entry is created.
            pass
        self._made_dirs.add(directory)

    @staticmethod
    def _discard(tmp: str) -> None:
        try:
            FileSystems.delete([tmp])
        except OSError:  # BeamIOError; a leftover tmp file is harmless and never read
            pass

    def stats(self) -> dict:
        with self._lock:
            return {
                "mode": self.mode,
                "hits": self.hits,
                "misses": self.misses,
                "writes": self.writes,
                "corrupt": self.corrupt,
                "skipped": self.skipped,
                "write_errors": self.write_errors,
            }
