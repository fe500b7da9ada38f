"""Trusted code of the sandbox's helper processes: ``python -s -S -B -c <this source>``.

``pipeline.sandbox`` reads this file's text and starts it as a *zygote*: one pre-started,
pre-imported process per sandbox (inside the isolation: its own PID, network, IPC and mount
namespaces when the level allows), with an empty environment. The pipeline never imports this
module. It uses the standard library only.

Zygote: reads requests from its control socket; each carries one socket of its own (SCM_RIGHTS).
Per request it forks a *runner*, which owns one check:

1. a private mount namespace with fresh tmpfs on /tmp, /var/tmp and /dev/shm (root only), so
   nothing a check writes outside its directory outlives it or reaches another check;
2. the work directory: ``sol/`` (the candidate's ``solution.py``) and ``tests/`` (the tests),
   each owned by its own unprivileged uid when the level gives uids, mode 0700 — the candidate
   cannot read the tests;
3. the children, each in a new session with rlimits (address space, CPU, file size, open
   files, processes, no core) and, when root, a uid of their own:
   - ``pipe`` judging: the *solution process* imports ``solution.py`` and serves calls; the
     *tests process* imports the tests against a proxy module ``solution`` that forwards every
     call across a pipe. Only plain data crosses (``marshal`` of None, bool, int, float,
     complex, str, bytes, list, tuple, dict, set, frozenset, checked again on arrival), so no
     candidate object reaches an ``==`` in the tests, and nothing the candidate prints or how it
     exits can report success. A value that is not plain data, a call that mutates its
     arguments or a name that is not a function or plain value makes the proxy ask for
     ``in_process`` judging instead (``fallback`` in the report);
   - ``in_process`` judging: one tests process imports the real ``solution.py``;
   - ``program``: one process runs ``program.py`` as ``__main__`` (math).
   The tests process reports on a pipe of its own, each line prefixed by a nonce from the
   worker; asserts executed in the tests are counted (the tests are compiled with a counter
   after every ``assert``);
4. when the tests process exits (or the deadline passes): SIGKILL to every process group, then
   a sweep: every process of the check's uids is killed (``kill(-1)`` as that uid), and every
   descendant left (the runner is a child subreaper, so escaped daemons are re-parented to
   it) is killed and reaped; the work directory is removed;
5. one reply: exit statuses, output (capped), reports, timings.

Messages are ``marshal`` of plain data, framed by an 8-byte length.
"""

import ast
import builtins
import ctypes
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

_write = os.write
_exit = os._exit
_getpid = os.getpid
_repr = repr
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

_PR_SET_CHILD_SUBREAPER = 36
_CLONE_NEWNS = 0x00020000
_MS_REC, _MS_PRIVATE = 0x4000, 1 << 18


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


def _describe(exc, with_type=True):
    try:
        text = f"{type(exc).__name__}: {exc}" if with_type else str(exc)
        text = text.strip().rstrip(":")
    except BaseException:  # noqa: BLE001 - an exception whose __str__ fails
        text = type(exc).__name__
    try:
        where = None
        tb = exc.__traceback__
        while tb is not None:
            filename = os.path.basename(tb.tb_frame.f_code.co_filename)
            if filename in CANDIDATE_FILES:
                where = (filename, tb.tb_lineno)
            tb = tb.tb_next
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


class _CountAsserts(ast.NodeTransformer):
    def visit_Assert(self, node):
        hit = ast.Expr(ast.Call(ast.Name(ASSERT_HIT, ast.Load()), [], []))
        return [node, ast.copy_location(hit, node)]


def _load_tests(report):
    with open(TESTS_MODULE + ".py", encoding="utf-8", errors="surrogateescape") as f:
        source = f.read()
    tree = _CountAsserts().visit(ast.parse(source, TESTS_MODULE + ".py"))
    code = compile(ast.fix_missing_locations(tree), TESTS_MODULE + ".py", "exec")
    module = _ModuleType(TESTS_MODULE)
    module.__file__ = TESTS_MODULE + ".py"

    def hit():
        report["asserts"] += 1

    module.__dict__[ASSERT_HIT] = hit
    sys.modules[TESTS_MODULE] = module
    exec(code, module.__dict__)
    return module


def _run_tests(report, pid):
    try:
        module = _load_tests(report)
    except BaseException as exc:  # noqa: BLE001 - SystemExit at import is a failure too
        report["error"] = "import: " + _describe(exc)
        report["memory"] = isinstance(exc, MemoryError)
        return
    if _getpid() != pid:  # a fork at import time continued into the harness
        _exit(0)
    tests = [
        (name, fn)
        for name, fn in list(vars(module).items())
        if name.startswith("test_")
        and isinstance(fn, _FunctionType)
        and fn.__module__ == TESTS_MODULE
    ]
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
                report["error"] = f"{name}: {_describe(exc)}"
                report["memory"] = isinstance(exc, MemoryError)
        else:
            report["passed"] += 1
        if _getpid() != pid:  # a test forked and the child returned into the harness
            _exit(0)


def _tests_child(report_fd, nonce, proxy_fds):
    """The tests process: its report (with the nonce) is the only way to a PASS."""
    pid = _getpid()
    report = {"run": 0, "passed": 0, "error": None, "memory": False, "asserts": 0}
    state = {"fallback": None}
    if proxy_fds is not None:
        try:
            sys.modules["solution"] = _Proxy(*proxy_fds, state).module()
        except _Fallback:
            pass
        except BaseException as exc:  # noqa: BLE001 - the solution failed to import
            report["error"] = "import: " + _describe(exc)
            report["memory"] = isinstance(exc, MemoryError)
            proxy_fds = "failed"
    if proxy_fds != "failed" and not state["fallback"]:
        _run_tests(report, pid)
    report["fallback"] = state["fallback"]
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001 - the candidate may have replaced or closed it
            pass
    if _getpid() == pid:
        _write_all(report_fd, nonce + b" " + _repr(report).encode("utf-8", "backslashreplace"))
    _exit(0)


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


def _close_fds(keep):
    low = 3
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 16)


# ------------------------------------------------------------------ runner


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _private_tmp(libc, size_mb):
    """A mount namespace of this check's own with empty tmpfs on the shared writable dirs."""
    if libc.unshare(_CLONE_NEWNS) != 0:
        return False
    libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None)
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
    libc = _libc()
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
            control.close()
            _runner(socket.socket(fileno=fds[0]), libc)
        os.close(fds[0])
        _reap()
    _exit(0)


if __name__ == "__main__":
    zygote(int(sys.argv[1]))
