"""Trusted prologue of every sandbox child: ``python -s -S -B -c <this source> MODE ...``.

``pipeline.sandbox`` reads this file's text and runs it as the child's ``-c`` program; the
pipeline never imports it. It uses the standard library only, so it runs on whatever
interpreter the sandbox points at.

Order of events, all before any candidate code runs:

1. bind what the harness needs (the candidate may later replace module attributes);
2. read the parent's nonce from stdin into a mutable buffer, then point fd 0 at /dev/null;
3. apply the resource limits (address space, CPU, file size, open files, processes, core);
4. optionally drop to an unprivileged uid/gid (here rather than in a ``preexec_fn``: without
   one the parent spawns with vfork, while a ``preexec_fn`` forces a full fork of a large
   worker and is unsafe next to threads);
5. write ``<nonce> ready`` to the report fd: without it the parent knows that the sandbox,
   not the candidate, failed (INFRA_ERROR).

Modes:

``tests``   import ``test_solution`` (which imports ``solution``), call every top-level
            ``test_*`` function it defines, in definition order, write one line
            ``<nonce> {"run": int, "passed": int, "error": str|None, "memory": bool}`` (a
            Python literal) to the report fd, then ``os._exit(0)``. An early exit or a crash
            leaves no report.
``program`` zero the nonce, close the report fd and run ``program.py`` as ``__main__``.

The nonce stops sloppy or early-exiting code from looking like a pass (a printed "All tests
passed", a report line without the nonce, ``os._exit(0)``); code that deliberately searches
this process's memory could find it. Isolation from the worker is the process boundary.

argv: MODE REPORT_FD NONCE_LEN AS_BYTES CPU_S FSIZE_BYTES NOFILE NPROC UID GID
(-1 = leave that limit alone / keep the uid).
"""

import os
import resource
import sys

# Start-up is most of the cost of a sandbox run, so the harness avoids json, traceback and
# importlib (their re/enum/tokenize imports cost ~30 ms per run).
_write = os.write
_getpid = os.getpid
_exit = os._exit
_repr = repr
_FunctionType = type(lambda: None)
_ModuleType = type(sys)


def _generator():
    yield


async def _coroutine():
    pass


async def _async_generator():
    yield


def _lazy_types():
    coroutine = _coroutine()
    kinds = (type(_generator()), type(coroutine), type(_async_generator()))
    coroutine.close()
    return kinds


_LAZY = _lazy_types()
CANDIDATE_FILES = ("solution.py", "test_solution.py", "program.py")
TESTS_MODULE = "test_solution"
DETAIL_CHARS = 400


def _read_nonce(length):
    nonce = bytearray(length)
    view = memoryview(nonce)
    got = 0
    while got < length:
        n = os.readv(0, [view[got:]])
        if n == 0:
            break
        got += n
    view.release()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    if got != length:
        raise RuntimeError("short nonce on stdin")
    return nonce


def _set_limits(as_bytes, cpu_s, fsize_bytes, nofile, nproc):
    limits = [
        (resource.RLIMIT_CORE, 0, 0),
        (resource.RLIMIT_AS, as_bytes, as_bytes),
        (resource.RLIMIT_CPU, cpu_s, cpu_s + 1),
        (resource.RLIMIT_FSIZE, fsize_bytes, fsize_bytes),
        (resource.RLIMIT_NOFILE, nofile, nofile),
        (resource.RLIMIT_NPROC, nproc, nproc),
    ]
    for which, soft, hard in limits:
        if soft >= 0:
            resource.setrlimit(which, (soft, hard))


def _drop_privileges(uid, gid):
    if uid < 0:
        return
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getuid() != uid or os.geteuid() != uid:
        raise RuntimeError("uid drop did not take effect")


def _send(fd, nonce, payload):
    data = bytes(nonce) + b" " + payload.encode("utf-8", "backslashreplace") + b"\n"
    while data:
        data = data[_write(fd, data) :]


def _source_line(filename, lineno):
    try:
        with open(filename, encoding="utf-8", errors="replace") as f:
            for number, line in enumerate(f, 1):
                if number == lineno:
                    return line.strip()
    except BaseException:  # noqa: BLE001 - best effort
        pass
    return ""


def _describe(exc):
    try:
        text = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
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


def _run_tests(report, pid):
    try:
        module = __import__(TESTS_MODULE)
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
        except BaseException as exc:  # noqa: BLE001 - SystemExit in a test is a failure
            if report["error"] is None:
                report["error"] = f"{name}: {_describe(exc)}"
                report["memory"] = isinstance(exc, MemoryError)
        else:
            report["passed"] += 1
        if _getpid() != pid:  # a test forked and the child returned into the harness
            _exit(0)


def _run_program():
    sys.argv = ["program.py"]
    with open("program.py", encoding="utf-8") as f:
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


def main(argv):
    mode, report_fd, nonce_len, as_bytes, cpu_s, fsize, nofile, nproc, uid, gid = argv
    report_fd = int(report_fd)
    nonce = _read_nonce(int(nonce_len))
    try:
        _set_limits(int(as_bytes), int(cpu_s), int(fsize), int(nofile), int(nproc))
        _drop_privileges(int(uid), int(gid))
        cwd = os.getcwd()
        if cwd not in sys.path:
            sys.path.insert(0, cwd)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent as INFRA_ERROR
        _send(report_fd, nonce, _repr({"infra": f"{type(exc).__name__}: {exc}"}))
        _exit(125)
    _send(report_fd, nonce, "ready")
    pid = _getpid()

    if mode == "program":
        nonce[:] = bytes(len(nonce))
        os.close(report_fd)
        _run_program()
        return

    report = {"run": 0, "passed": 0, "error": None, "memory": False}
    _run_tests(report, pid)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001 - the candidate may have replaced or closed it
            pass
    if _getpid() == pid:
        _send(report_fd, nonce, _repr(report))
    _exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
