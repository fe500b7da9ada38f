"""Trusted code of the sandbox's helper processes: ``python -s -S -B -c <this source>``.

``pipeline.sandbox.sandbox`` reads this file's text and starts it as a *zygote*: one pre-started,
pre-imported process per sandbox (inside the isolation: its own PID, network, IPC and mount
namespaces when the level allows), with an empty environment. The pipeline never imports this
module. It uses the standard library only.

Zygote: reads requests from its control socket; each carries one socket of its own (SCM_RIGHTS).
Per request it forks a *runner*, which owns one check:

1. a private mount namespace (root only) in which every mount is read-only and /tmp,
   /var/tmp and /dev/shm are fresh tmpfs, so nothing a check writes outside its directory
   outlives it or reaches the host or another check;
2. the work directory: ``sol/`` (the candidate's ``solution.py``) and ``tests/`` (the tests),
   each owned by its own unprivileged uid when the level gives uids, mode 0700 — the candidate
   cannot read the tests;
3. the children, each in a new session with rlimits (address space, CPU, file size, open
   files, processes, no core), a seccomp filter that refuses ``socket()`` (no network, no
   Unix sockets, at every level) and, when root, a uid of their own:
   - ``pipe`` judging: the *solution process* imports ``solution.py`` and serves calls; the
     *tests process* imports the tests against a proxy module ``solution`` that forwards every
     call across a pipe. Only plain data crosses (``marshal`` of None, bool, int, float,
     complex, str, bytes, list, tuple, dict, set, frozenset, checked again on arrival), so no
     candidate object reaches an ``==`` in the tests, and nothing the candidate prints or how it
     exits can report success. A value that is not plain data, a call that mutates its
     arguments or a name that is not a function or plain value makes the proxy ask for
     ``in_process`` judging instead (``fallback`` in the report);
   - ``in_process`` judging: one tests process imports the real ``solution.py``, under an
     audit-hook guard (``_install_guard``): any reach for frames, ``gc``, ``ctypes``, code
     objects or process memory ends it with ``SUSPICIOUS_EXIT``;
   - ``program``: one process runs ``program.py`` as ``__main__`` (math).
   The tests process reports on a pipe of its own, prefixed by a nonce from the worker; the
   tests are compiled with every ``assert`` counted and its comparison decided on plain data
   (``_strict_check``: an object whose ``__eq__`` or ``__bool__`` always says yes compares
   as unequal to any data); harness functions are bound as default arguments before
   candidate code runs, so patching this module's globals changes nothing;
4. when the tests process exits (or the deadline passes): SIGKILL to every process group, then
   a sweep: every process of the check's uids is killed (``kill(-1)`` as that uid), and every
   descendant left (the runner is a child subreaper, so escaped daemons are re-parented to
   it) is killed and reaped; the work directory is removed;
5. one reply: exit statuses, output (capped), reports, timings.

Messages are ``marshal`` of plain data, framed by an 8-byte length.
"""

import ast
import builtins
import collections
import ctypes
import datetime
import decimal
import enum
import fractions
import marshal
import os
import resource
import select
import shutil
import signal
import socket
import struct
import sys
import tempfile
import time
import typing

# Common modules of candidate code, imported once here rather than in every check.
for _name in ("bisect", "functools", "heapq", "itertools", "math", "random", "re", "string"):
    __import__(_name)

_write = os.write
_exit = os._exit
_getpid = os.getpid
_FunctionType = type(lambda: None)
_ModuleType = type(sys)
_LEN = struct.Struct("!Q")
_PLAIN_SCALARS = (type(None), bool, int, float, complex, str, bytes)
_PLAIN_CONTAINERS = (list, tuple, set, frozenset)
_PLAIN_DEPTH = 64
_READ_CHUNK = 1 << 16
_REPORT_CAP = 1 << 16
_EXIT_GRACE_S = 0.1
DETAIL_CHARS = 400
CANDIDATE_FILES = ("solution.py", "test_solution.py", "program.py")
TESTS_MODULE = "test_solution"
ASSERT_HIT = "__synthgen_assert_hit__"
STRICT_CMP = "__synthgen_cmp__"
STRICT_TRUTH = "__synthgen_truth__"
SUSPICIOUS_EXIT = 113  # the in-process guard saw introspection that could forge a verdict

_PR_SET_CHILD_SUBREAPER = 36
_CLONE_NEWNS = 0x00020000
_MS_RDONLY, _MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 1, 32, 4096, 0x4000, 1 << 18
_NR_MOUNT_SETATTR, _AT_FDCWD, _AT_RECURSIVE, _MOUNT_ATTR_RDONLY = 442, -100, 0x8000, 1
# seccomp: socket() refused (EACCES) for the native ABI; any other ABI (x32, 32-bit compat
# calls from a 64-bit process) refused entirely. {machine: (AUDIT_ARCH, __NR_socket)}
_SECCOMP_ARCH = {"x86_64": (0xC000003E, 41), "aarch64": (0xC00000B7, 198)}
_PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 38, 22, 2


def _generator():
    yield


async def _coroutine():
    pass


def _lazy_types():
    coroutine = _coroutine()
    kinds = (type(_generator()), type(coroutine))
    coroutine.close()
    return kinds


_LAZY = _lazy_types()
# Pre-imported, so the module-level namedtuples etc. of common modules exist before the guard.
_TRUSTED_TYPES = frozenset(
    {
        fractions.Fraction,
        decimal.Decimal,
        collections.deque,
        collections.Counter,
        collections.OrderedDict,
        collections.defaultdict,
        datetime.date,
        datetime.datetime,
        datetime.time,
        datetime.timedelta,
    }
)
_COLLECTIONS_FILE, _TYPING_FILE, _ENUM_FILE = collections.__file__, typing.__file__, enum.__file__
_GUARDED_EVENTS = frozenset(
    {
        "sys._getframe",
        "sys._current_frames",
        "sys.settrace",
        "sys.setprofile",
        "sys.addaudithook",
        "gc.get_objects",
        "gc.get_referrers",
        "gc.get_referents",
        "object.__getattr__",  # tb_frame, gi_frame, cr_frame, __code__, __defaults__, ...
        "object.__setattr__",  # __code__ swaps
        "object.__delattr__",
        "code.__new__",
        "function.__new__",
    }
)


# ------------------------------------------------------------------ framing


def send_msg(sock, value):
    data = marshal.dumps(value)
    sock.sendall(_LEN.pack(len(data)) + data)


def _recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), _READ_CHUNK))
        if not chunk:
            raise EOFError("connection closed")
        buf += chunk
    return bytes(buf)


def recv_msg(sock):
    (n,) = _LEN.unpack(_recv_exact(sock, _LEN.size))
    return marshal.loads(_recv_exact(sock, n))


def _write_all(fd, data):
    while data:
        data = data[_write(fd, data) :]


def _read_exact_fd(fd, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return bytes(buf)


def _fd_send(fd, value):
    data = marshal.dumps(value)
    _write_all(fd, _LEN.pack(len(data)) + data)


def _fd_recv(fd):
    (n,) = _LEN.unpack(_read_exact_fd(fd, _LEN.size))
    return marshal.loads(_read_exact_fd(fd, n))


def is_plain(value, depth=0):
    """Exact builtin types only: a subclass could override ``__eq__``."""
    kind = type(value)
    if kind in _PLAIN_SCALARS:
        return True
    if depth > _PLAIN_DEPTH:
        return False
    if kind in _PLAIN_CONTAINERS:
        return all(is_plain(v, depth + 1) for v in value)
    if kind is dict:
        return all(is_plain(k, depth + 1) and is_plain(v, depth + 1) for k, v in value.items())
    return False


# ------------------------------------------------------------------ children


def _set_limits(limits):
    as_bytes, cpu_s, fsize, nofile, nproc = limits
    for which, soft, hard in (
        (resource.RLIMIT_CORE, 0, 0),
        (resource.RLIMIT_AS, as_bytes, as_bytes),
        (resource.RLIMIT_CPU, cpu_s, cpu_s + 1),
        (resource.RLIMIT_FSIZE, fsize, fsize),
        (resource.RLIMIT_NOFILE, nofile, nofile),
        (resource.RLIMIT_NPROC, nproc, nproc),
    ):
        if soft >= 0:
            resource.setrlimit(which, (soft, hard))


def _become(uid):
    if uid < 0:
        return
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if os.getuid() != uid or os.geteuid() != uid:
        raise RuntimeError("uid drop did not take effect")


def _source_line(filename, lineno):
    try:
        with open(filename, encoding="utf-8", errors="replace") as f:
            for number, line in enumerate(f, 1):
                if number == lineno:
                    return line.strip()
    except BaseException:  # noqa: BLE001 - best effort
        pass
    return ""


def _where(tb):
    """(file, line) of the innermost traceback entry in a candidate file, or None. Touches
    only built-in attributes (no candidate code runs), so the guard may be paused for it."""
    where = None
    while tb is not None:
        filename = os.path.basename(tb.tb_frame.f_code.co_filename)
        if filename in CANDIDATE_FILES:
            where = (filename, tb.tb_lineno)
        tb = tb.tb_next
    return where


def _describe(exc, with_type=True, quiet=None):
    try:
        text = f"{type(exc).__name__}: {exc}" if with_type else str(exc)
        text = text.strip().rstrip(":")
    except BaseException:  # noqa: BLE001 - an exception whose __str__ fails
        text = type(exc).__name__
    try:
        tb = exc.__traceback__
        where = quiet(_where, tb) if quiet else _where(tb)
        if where:
            text += f" at {where[0]}:{where[1]}"
            line = _source_line(*where)
            if line:
                text += f" `{line}`"
    except BaseException:  # noqa: BLE001 - best effort (e.g. out of memory)
        pass
    return text[:DETAIL_CHARS]


class _Fallback(BaseException):
    """The proxy cannot judge across the pipe; the check is repeated ``in_process``."""


class _SolutionGone(BaseException):
    """The solution process died during a call (its exit status decides the verdict)."""


def _exception_for(name, message):
    kind = getattr(builtins, name, None)
    if isinstance(kind, type) and issubclass(kind, Exception):
        try:
            return kind(message)
        except BaseException:  # noqa: BLE001 - an exception type with a different signature
            pass
    return RuntimeError(f"{name}: {message}")


class _Proxy:
    """The tests process's view of the solution: calls go to the solution process."""

    def __init__(self, to_solution, from_solution, state):
        self._to, self._from, self._state = to_solution, from_solution, state

    def module(self):
        try:
            kind, payload = _fd_recv(self._from)
        except (EOFError, ValueError, TypeError, struct.error):
            raise _SolutionGone("the solution process died while importing") from None
        if kind == "raise":
            name, message = payload
            raise _exception_for(name, message)
        module = _ModuleType("solution")
        others = set()
        for name, (what, value) in payload.items():
            if what == "call":
                module.__dict__[name] = self._function(name)
            elif what == "value" and is_plain(value):
                module.__dict__[name] = value
            else:
                others.add(name)

        def __getattr__(name):
            if name in others:
                self._fallback(f"solution.{name} is neither a function nor plain data")
            raise AttributeError(f"module 'solution' has no attribute {name!r}")

        module.__getattr__ = __getattr__
        return module

    def _fallback(self, reason):
        self._state["fallback"] = self._state["fallback"] or reason
        raise _Fallback(reason)

    def _function(self, name):
        def call(*args, **kwargs):
            if not is_plain(args) or not is_plain(kwargs):
                self._fallback(f"solution.{name} is called with a value that is not plain data")
            try:
                _fd_send(self._to, (name, args, kwargs))
                kind, payload = _fd_recv(self._from)
            except (OSError, EOFError, ValueError, TypeError, struct.error):
                raise _SolutionGone(f"the solution process died in {name}()") from None
            if kind == "ok" and is_plain(payload):
                return payload
            if kind == "raise":
                raise _exception_for(*payload)
            if kind == "fallback":
                self._fallback(payload)
            raise _SolutionGone(f"malformed answer from the solution process in {name}()")

        call.__name__ = call.__qualname__ = name
        return call


def _serve_solution(from_tests, to_tests):
    """The solution process: import ``solution.py``, then answer calls until EOF."""
    try:
        module = __import__("solution")
    except BaseException as exc:  # noqa: BLE001 - SystemExit at import is a failure too
        _fd_send(to_tests, ("raise", (type(exc).__name__, _describe(exc, False))))
        return
    names = {}
    for name, value in list(vars(module).items()):
        if name.startswith("__"):
            continue
        if callable(value) and type(value) is _FunctionType:
            names[name] = ("call", None)
        elif is_plain(value):
            names[name] = ("value", value)
        else:
            names[name] = ("other", None)
    _fd_send(to_tests, ("names", names))
    while True:
        try:
            name, args, kwargs = _fd_recv(from_tests)
        except EOFError:
            return
        before = marshal.dumps((args, kwargs), 2)  # version 2: no refcount-dependent refs
        try:
            result = getattr(module, name)(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - the tests decide what an exception means
            if isinstance(exc, MemoryError):
                raise
            _fd_send(to_tests, ("raise", (type(exc).__name__, _describe(exc, False))))
            continue
        if not is_plain(result):
            answer = ("fallback", f"solution.{name}() returned {type(result).__name__}")
        elif marshal.dumps((args, kwargs), 2) != before:
            answer = ("fallback", f"solution.{name}() mutates its arguments")
        else:
            answer = ("ok", result)
        _fd_send(to_tests, answer)


_STRICT_OPS = {
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
    ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b,
    ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
_NEGATIVE_OPS = (ast.NotEq, ast.NotIn)
_NOT_PLAIN = object()


def _to_plain(value, depth=0):
    """``value`` rebuilt from exact builtin types through the builtin types' own C methods (a
    subclass's overrides are never called), or ``_NOT_PLAIN``."""
    kind = type(value)
    if kind in _PLAIN_SCALARS:
        return value
    if depth > _PLAIN_DEPTH:
        return _NOT_PLAIN
    for base, rebuild in _REBUILD:
        if isinstance(value, base):
            return rebuild(value, depth + 1)
    return _NOT_PLAIN


def _rebuild_items(items, depth, make):
    out = [_to_plain(v, depth) for v in items]
    return _NOT_PLAIN if any(v is _NOT_PLAIN for v in out) else make(out)


def _rebuild_dict(value, depth):
    pairs = [(_to_plain(k, depth), _to_plain(v, depth)) for k, v in dict.items(value)]
    if any(k is _NOT_PLAIN or v is _NOT_PLAIN for k, v in pairs):
        return _NOT_PLAIN
    return dict(pairs)


_REBUILD = (
    (bool, lambda v, d: bool(int.__index__(v))),
    (int, lambda v, d: int.__index__(v)),
    (float, lambda v, d: float.__float__(v)),
    (complex, lambda v, d: complex(complex.__getattribute__(v, "real"), v.imag)),
    (str, lambda v, d: str.__str__(v)),
    (bytes, lambda v, d: bytes.__getitem__(v, slice(None))),
    (tuple, lambda v, d: _rebuild_items(tuple.__iter__(v), d, tuple)),
    (list, lambda v, d: _rebuild_items(list.__iter__(v), d, list)),
    (frozenset, lambda v, d: _rebuild_items(frozenset.__iter__(v), d, frozenset)),
    (set, lambda v, d: _rebuild_items(set.__iter__(v), d, set)),
    (dict, _rebuild_dict),
)


def _strict_check(trusted):
    """The functions rewritten asserts call: a comparison with plain data on one side is
    decided on plain data, so a candidate object whose ``__eq__`` (or ``__bool__``) always
    says yes cannot satisfy it; ``trusted`` standard-library types compare as themselves."""

    def comparable(value):
        if type(value) in trusted:
            return value
        return _to_plain(value)

    def compare(op, left, right):
        a, b = comparable(left), comparable(right)
        if a is _NOT_PLAIN and b is _NOT_PLAIN:
            return _STRICT_OPS[op](left, right)  # neither side is data: the tests' own objects
        if a is _NOT_PLAIN or b is _NOT_PLAIN:
            return op in _NEGATIVE_OPS  # an opaque object is not equal to, nor in, any data
        return _STRICT_OPS[op](a, b)

    def truth(value):
        plain = comparable(value)
        return False if plain is _NOT_PLAIN else bool(plain)

    return compare, truth


class _RewriteAsserts(ast.NodeTransformer):
    """``assert x OP y`` -> ``assert __synthgen_cmp__(OP, x, y)``; ``assert x`` ->
    ``assert __synthgen_truth__(x)``; each assert followed by a count of its execution."""

    def __init__(self):
        self.ops = []

    def visit_Assert(self, node):
        test = node.test
        compare = isinstance(test, ast.Compare) and len(test.ops) == 1
        if compare and type(test.ops[0]) in _STRICT_OPS:
            self.ops.append(type(test.ops[0]))
            op = ast.Constant(len(self.ops) - 1)
            args = [op, test.left, test.comparators[0]]
            node.test = ast.Call(ast.Name(STRICT_CMP, ast.Load()), args, [])
        elif not isinstance(test, ast.Compare):  # chained comparisons give a plain bool
            node.test = ast.Call(ast.Name(STRICT_TRUTH, ast.Load()), [test], [])
        hit = ast.Expr(ast.Call(ast.Name(ASSERT_HIT, ast.Load()), [], []))
        return [node, ast.copy_location(hit, node)]


def _load_tests(counter, trusted):
    """The tests module, executed with rewritten asserts. It is not put in ``sys.modules``, so
    candidate code cannot find its functions there."""
    with open(TESTS_MODULE + ".py", encoding="utf-8", errors="surrogateescape") as f:
        source = f.read()
    rewriter = _RewriteAsserts()
    tree = rewriter.visit(ast.parse(source, TESTS_MODULE + ".py"))
    code = compile(ast.fix_missing_locations(tree), TESTS_MODULE + ".py", "exec")
    module = _ModuleType(TESTS_MODULE)
    module.__file__ = TESTS_MODULE + ".py"
    compare, truth = _strict_check(trusted)
    ops = tuple(rewriter.ops)

    def hit():
        counter[0] += 1

    module.__dict__[ASSERT_HIT] = hit
    module.__dict__[STRICT_CMP] = lambda index, a, b: compare(ops[index], a, b)
    module.__dict__[STRICT_TRUTH] = truth
    exec(code, module.__dict__)
    return module


def _run_tests(report, pid, quiet=None, _getpid=os.getpid, _exit=os._exit):
    """Import the tests and call every top-level ``test_*`` in order. Harness functions come
    in as default arguments, bound before any candidate code exists, so patching this
    module's globals changes nothing here."""
    counter = [0]
    try:
        module = _load_tests(counter, _TRUSTED_TYPES)
    except BaseException as exc:  # noqa: BLE001 - SystemExit at import is a failure too
        report["error"] = "import: " + _describe(exc, quiet=quiet)
        report["memory"] = isinstance(exc, MemoryError)
        return
    if _getpid() != pid:  # a fork at import time continued into the harness
        _exit(0)
    tests = tuple(
        (name, fn)
        for name, fn in list(vars(module).items())
        if name.startswith("test_")
        and isinstance(fn, _FunctionType)
        and fn.__module__ == TESTS_MODULE
    )
    for name, fn in tests:
        report["run"] += 1
        try:
            result = fn()
            if isinstance(result, _LAZY):
                raise TypeError("the test returned a generator or coroutine instead of running")
        except _Fallback:
            return
        except BaseException as exc:  # noqa: BLE001 - SystemExit in a test is a failure
            if report["error"] is None:
                report["error"] = f"{name}: {_describe(exc, quiet=quiet)}"
                report["memory"] = isinstance(exc, MemoryError)
        else:
            report["passed"] += 1
        if _getpid() != pid:  # a test forked and the child returned into the harness
            _exit(0)
    report["asserts"] = counter[0]


def _install_guard(_exit=os._exit, _getframe=sys._getframe, _addaudithook=sys.addaudithook):
    """In-process judging shares a process with the candidate, so every way to reach the
    harness's frames, objects or memory is watched (PEP 578 audit hooks cannot be removed):
    frames (``sys._getframe``, ``tb_frame``, ``gi_frame``, ...), ``gc``, ``ctypes``, code
    swaps, tracing, new audit hooks, ``/proc/*/mem``. The first such event ends the process
    with ``SUSPICIOUS_EXIT``. The standard library's own frame lookups for a module name
    (``namedtuple``, ``typing``, ``enum``) are allowed. Returns ``quiet(fn, *args)``, which
    runs a harness function that only reads built-in attributes with the guard paused."""
    allowed = {_COLLECTIONS_FILE, _TYPING_FILE, _ENUM_FILE}
    paused = [False]

    def guard(event, args):
        if paused[0]:
            return
        if event == "open":
            path = args[0] if isinstance(args[0], str) else ""
            if not (path.startswith("/proc/") and path.endswith(("/mem", "/maps"))):
                return
        elif not (event in _GUARDED_EVENTS or event.startswith("ctypes.")):
            return
        if event == "sys._getframe":
            paused[0] = True
            try:
                filename = _getframe(1).f_code.co_filename
            finally:
                paused[0] = False
            if filename in allowed:
                return
        _exit(SUSPICIOUS_EXIT)

    def quiet(fn, *args):
        paused[0] = True
        try:
            return fn(*args)
        finally:
            paused[0] = False

    _addaudithook(guard)
    return quiet


def _tests_child(report_fd, nonce, proxy_fds, _write=os.write, _getpid=os.getpid, _repr=repr):
    """The tests process: its report (with the nonce) is the only way to a PASS."""
    pid = _getpid()
    report = {"run": 0, "passed": 0, "error": None, "memory": False, "asserts": 0}
    state = {"fallback": None}
    quiet = None
    if proxy_fds is not None:
        try:
            sys.modules["solution"] = _Proxy(*proxy_fds, state).module()
        except _Fallback:
            pass
        except BaseException as exc:  # noqa: BLE001 - the solution failed to import
            report["error"] = "import: " + _describe(exc)
            report["memory"] = isinstance(exc, MemoryError)
            proxy_fds = "failed"
    else:
        quiet = _install_guard()  # the candidate is imported into this process
    if proxy_fds != "failed" and not state["fallback"]:
        _run_tests(report, pid, quiet)
    report["fallback"] = state["fallback"]
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001 - the candidate may have replaced or closed it
            pass
    if _getpid() == pid:
        data = nonce + b" " + _repr(report).encode("utf-8", "backslashreplace")
        while data:
            data = data[_write(report_fd, data) :]
    os._exit(0)


def _run_program():
    sys.argv = ["program.py"]
    with open("program.py", encoding="utf-8", errors="surrogateescape") as f:
        source = f.read()
    main = _ModuleType("__main__")
    main.__file__ = "program.py"
    sys.modules["__main__"] = main
    try:
        exec(compile(source, "program.py", "exec"), main.__dict__)
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - print the program's frames only, exit 1
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename != "program.py":
            tb = tb.tb_next
        sys.excepthook(type(exc), exc, tb)
        raise SystemExit(1) from None


def _spawn(cwd, uid, limits, out_fd, err_fd, keep, body):
    """Fork a child in its own session: stdio redirected, limits, uid, then ``body()``."""
    pid = os.fork()
    if pid:
        return pid
    status = 0
    try:
        os.setsid()
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        _close_fds(keep)
        os.chdir(cwd)
        _set_limits(limits)
        _become(uid)
        _refuse_sockets()
        sys.path.insert(0, cwd)
        sys.stdout = open(1, "w", encoding="utf-8", errors="backslashreplace", closefd=False)
        sys.stderr = open(
            2, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False
        )
    except BaseException as exc:  # noqa: BLE001 - the sandbox could not set the child up
        _write_all(2, f"synthgen-sandbox-setup: {type(exc).__name__}: {exc}\n".encode())
        _exit(125)
    try:
        body()
    except SystemExit as exc:
        code = exc.code
        status = code if isinstance(code, int) else (0 if code is None else 1)
        if not isinstance(code, int) and code is not None:
            try:
                print(code, file=sys.stderr)
            except BaseException:  # noqa: BLE001
                pass
    except BaseException as exc:  # noqa: BLE001
        try:
            print(_describe(exc), file=sys.stderr)
        except BaseException:  # noqa: BLE001
            pass
        status = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001
        pass
    _exit(status & 0xFF)


_LIBC = ctypes.CDLL(None, use_errno=True)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _refuse_sockets(_libc=_LIBC):
    """No network and no Unix sockets at any level: a seccomp filter makes socket() fail
    (socketpair, which only connects the process to itself, stays allowed)."""
    machine = os.uname().machine
    if machine not in _SECCOMP_ARCH:
        return
    arch, nr_socket = _SECCOMP_ARCH[machine]
    allow, deny = 0x7FFF0000, 0x00050000 | 13  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO|EACCES
    program = [
        (0x20, 0, 0, 4),  # A = seccomp_data.arch
        (0x15, 0, 4, arch),  # other ABI -> deny
        (0x20, 0, 0, 0),  # A = seccomp_data.nr
        (0x35, 2, 0, 0x40000000),  # x32 syscall numbers -> deny
        (0x15, 1, 0, nr_socket),  # socket() -> deny
        (0x06, 0, 0, allow),
        (0x06, 0, 0, deny),
    ]
    code = b"".join(struct.pack("HBBI", *insn) for insn in program)
    buf = ctypes.create_string_buffer(code)
    prog = _SockFprog(len(program), ctypes.cast(buf, ctypes.c_void_p))
    if _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
    if _libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "seccomp filter")


def _close_fds(keep):
    low = 3
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 16)


# ------------------------------------------------------------------ runner


class _MountAttr(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in ("set", "clr", "propagation", "userns")]


def _private_tmp(libc, size_mb):
    """A mount namespace of this check's own: every mount read-only (mount_setattr with
    AT_RECURSIVE, Linux >= 5.12; on older kernels only the root mount), then empty tmpfs on
    the shared writable dirs, so nothing a check writes outside them reaches the host."""
    if libc.unshare(_CLONE_NEWNS) != 0:
        return False
    libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None)
    attr = _MountAttr(_MOUNT_ATTR_RDONLY, 0, 0, 0)
    flags = _AT_RECURSIVE
    if libc.syscall(_NR_MOUNT_SETATTR, _AT_FDCWD, b"/", flags, ctypes.byref(attr), 32) != 0:
        libc.mount(b"none", b"/", None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY, None)
    for path in (b"/tmp", b"/var/tmp", b"/dev/shm"):
        if os.path.isdir(path):
            libc.mount(b"tmpfs", path, b"tmpfs", 0, f"size={size_mb}m,mode=1777".encode())
    return True


def _prepare(root, request):
    work = tempfile.mkdtemp(prefix="synthgen-check-", dir=root)
    os.chmod(work, 0o755)
    dirs = {}
    for part, uid in request["dirs"].items():
        path = os.path.join(work, part)
        os.mkdir(path, 0o700)
        if uid >= 0:
            os.chown(path, uid, uid)
        dirs[part] = path
    for part, name, text in request["files"]:
        path = os.path.join(dirs[part], name)
        with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(text)
        uid = request["dirs"][part]
        if uid >= 0:
            os.chown(path, uid, uid)
    return work, dirs


def _sweep(uids, me):
    """Kill every process of the check's uids and every descendant left; reap them all."""
    uids = [uid for uid in uids if uid >= 0]
    if uids:
        pid = os.fork()
        if pid == 0:
            try:
                for uid in uids:
                    # Real and effective uid = the check's, so kill(-1) reaches exactly that
                    # uid's processes; the saved uid 0 lets this process switch to the next.
                    os.setresuid(uid, uid, 0)
                    for _ in range(50):
                        try:
                            os.kill(-1, signal.SIGKILL)  # every process of this uid but this one
                        except ProcessLookupError:
                            break
                    os.setresuid(0, 0, 0)
            finally:
                _exit(0)
        os.waitpid(pid, 0)
    for _ in range(200):
        children = _children(me)
        for child in children:
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _reap()
        if not children:
            return


def _children(me):
    try:
        with open(f"/proc/{me}/task/{me}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        pass
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    stat = f.read()
                if int(stat[stat.rindex(b")") + 2 :].split()[1]) == me:
                    found.append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    return found


def _reap():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _collect(fds, caps, pids, deadline, main_pid, report_fd):
    """Read pipes until ``main_pid`` exited (+ grace) or the deadline; statuses of ``pids``."""
    bufs = {fd: bytearray() for fd in fds}
    statuses = {}
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    open_fds = set(fds)
    try:  # wakes the poll when the main child exits, instead of a polling tick
        pidfd = os.pidfd_open(main_pid)
        poller.register(pidfd, select.POLLIN)
    except (AttributeError, OSError):
        pidfd = None
    timed_out = exceeded = False
    exited_at = None
    while True:
        for pid in pids:
            if pid not in statuses:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    statuses[pid] = status
        now = time.monotonic()
        if exited_at is None and main_pid in statuses:
            exited_at = now
        if exited_at is not None:
            if not open_fds or now >= exited_at + _EXIT_GRACE_S:
                break
            until = exited_at + _EXIT_GRACE_S
        elif now >= deadline:
            timed_out = True
            break
        else:
            until = deadline
        for fd, _event in poller.poll(max(0, min(20, int((until - now) * 1000) + 1))):
            if fd == pidfd:
                poller.unregister(fd)
                continue
            chunk = os.read(fd, _READ_CHUNK)
            if not chunk:
                poller.unregister(fd)
                open_fds.discard(fd)
                continue
            buf = bufs[fd]
            room = caps[fd] - len(buf)
            buf += chunk[: max(room, 0)]
            if len(chunk) > room and fd != report_fd:
                exceeded = True
        if exceeded:
            break
    if pidfd is not None:
        os.close(pidfd)
    return bufs, statuses, timed_out, exceeded


def _signal_of(status):
    if status is None:
        return None
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def run_check(request, libc):
    """One check (see the module docstring, steps 1-5); returns the reply dict."""
    started = time.monotonic()
    me = _getpid()
    libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    root = None
    if request["private_tmp"] and _private_tmp(libc, request["tmp_mb"]):
        root = "/tmp"
    work, dirs = _prepare(root or request["tmp_root"], request)
    limits = tuple(request["limits"])
    mode = request["mode"]
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    rep_r, rep_w = os.pipe()
    pids = []
    nonce = request["nonce"]
    if mode == "program":
        pids.append(
            _spawn(dirs["sol"], request["dirs"]["sol"], limits, out_w, err_w, (), _run_program)
        )
    elif mode == "pipe":
        call_r, call_w = os.pipe()  # tests -> solution
        answer_r, answer_w = os.pipe()  # solution -> tests
        sol = _spawn(
            dirs["sol"],
            request["dirs"]["sol"],
            limits,
            out_w,
            err_w,
            (call_r, answer_w),
            lambda: _serve_solution(call_r, answer_w),
        )
        tests = _spawn(
            dirs["tests"],
            request["dirs"]["tests"],
            limits,
            out_w,
            err_w,
            (rep_w, call_w, answer_r),
            lambda: _tests_child(rep_w, nonce, (call_w, answer_r)),
        )
        for fd in (call_r, call_w, answer_r, answer_w):
            os.close(fd)
        pids += [tests, sol]
    else:  # in_process
        pids.append(
            _spawn(
                dirs["tests"],
                request["dirs"]["tests"],
                limits,
                out_w,
                err_w,
                (rep_w,),
                lambda: _tests_child(rep_w, nonce, None),
            )
        )
    for fd in (out_w, err_w, rep_w):
        os.close(fd)
    caps = {out_r: request["output_cap"], err_r: request["output_cap"], rep_r: _REPORT_CAP}
    deadline = started + request["timeout_s"]
    bufs, statuses, timed_out, exceeded = _collect(
        (out_r, err_r, rep_r), caps, pids, deadline, pids[0], rep_r
    )
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    for pid in pids:
        if pid not in statuses:
            try:
                statuses[pid] = os.waitpid(pid, 0)[1]
            except ChildProcessError:
                pass
    _sweep(set(request["dirs"].values()), me)
    shutil.rmtree(work, ignore_errors=True)
    return {
        "statuses": [_signal_of(statuses.get(pid)) for pid in pids],
        "stdout": bytes(bufs[out_r]),
        "stderr": bytes(bufs[err_r]),
        "report": bytes(bufs[rep_r]),
        "timed_out": timed_out,
        "output_exceeded": exceeded,
        "duration_s": time.monotonic() - started,
    }


# ------------------------------------------------------------------ zygote


def _runner(conn, libc):
    try:
        request = recv_msg(conn)
        try:
            reply = run_check(request, libc)
        except BaseException as exc:  # noqa: BLE001 - reported to the worker as INFRA_ERROR
            reply = {"infra": f"{type(exc).__name__}: {exc}"}
        send_msg(conn, reply)
    finally:
        _exit(0)


def zygote(control_fd):
    libc = _LIBC
    # Runners, and orphans re-parented to the zygote (PID 1 of its namespace), are reaped as
    # they exit, not at the next request: a zombie still counts against its uid's NPROC.
    signal.signal(signal.SIGCHLD, lambda *_: _reap())
    control = socket.socket(fileno=control_fd)
    send_msg(control, {"ready": True, "pid": _getpid(), "uid": os.getuid()})
    while True:
        try:
            _, fds, _, _ = socket.recv_fds(control, 16, 1)
        except OSError:
            fds = []
        if not fds:
            break  # the worker is gone: exit, and the namespace's processes with us
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the runner waits for its own
            control.close()
            _runner(socket.socket(fileno=fds[0]), libc)
        os.close(fds[0])
        _reap()
    _exit(0)


if __name__ == "__main__":
    zygote(int(sys.argv[1]))
