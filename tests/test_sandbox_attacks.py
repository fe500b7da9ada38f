"""Sandbox attacks: an adversarial corpus against the strongest isolation level.

Contract: a wrong solution never gets PASS, whatever it tries (SUSPICIOUS is acceptable for a
forgery that only works in the ``in_process`` judge); an attack whose solution is otherwise
correct ("escape" attacks) may PASS, but its side effect never happens. After every attack: no
file it aimed at exists on the host, no host file it aimed at is changed, no listener of the
test accepted a connection, the secret ``OPENAI_API_KEY`` of the worker appears nowhere in the
result, no process of the check's uids is left, and a correct check right after still PASSes.

Attacks that could hurt the machine if the sandbox failed (fork bombs, ``kill(-1)``) run in a
sandbox created inside a PID namespace of the test's own (``unshare --pid``, in a child
process that reports its results as JSON), so a regression fails the test instead of CI.
Known weaknesses are ``xfail(strict=True)`` with the reason.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.records import (
    FAIL_CRASH,
    FAIL_MEMORY,
    FAIL_NO_REPORT,
    FAIL_TESTS,
    FAIL_TIMEOUT,
    PASS,
    SUSPICIOUS,
)
from pipeline.sandbox.sandbox import (
    ISOLATION_NAMESPACES_UID,
    ISOLATION_PROCESS_UID,
    MAX_SLOTS,
    UID_BASE,
    Limits,
    Sandbox,
    _Slots,
)

pytestmark = pytest.mark.skipif(
    not (sys.platform.startswith("linux") and os.geteuid() == 0 and shutil.which("unshare")),
    reason="the attacks run at the namespaces+uid level: Linux, root and unshare",
)

ROOT = Path(__file__).resolve().parents[1]
LIMITS = Limits(timeout_s=2, memory_mb=256, max_output_kb=64, max_file_mb=1, max_processes=16)
SECRET = "sk-synthgen-attack-" + secrets.token_hex(16)

FAILS = frozenset({FAIL_TESTS, FAIL_TIMEOUT, FAIL_MEMORY, FAIL_CRASH, FAIL_NO_REPORT})
NOT_PASS = FAILS | {SUSPICIOUS}  # a forgery caught by the in-process red flags is fine
ONLY = frozenset  # ONLY({FAIL_TESTS}): the one verdict expected

ADD = "def add(a, b):\n    return a + b\n"
WRONG = "def add(a, b):\n    return a - b\n"
ADD_TESTS = "from solution import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"

# In pipe judging an opaque return value makes the judge rerun the check in_process, where
# the solution shares the tests' interpreter; the tests file sits in the cwd only then.
IN_PROCESS_ONLY = """\
import os


class _Opaque:
    pass


def _pipe_judge():
    return not os.path.exists("test_solution.py")
"""

# ------------------------------------------------------------------ the attack corpus


@dataclass(frozen=True)
class Attack:
    id: str
    solution: str
    verdicts: frozenset  # acceptable verdicts
    check: Callable[[Ctx, dict], None]  # the side effect this attack aims at did not happen
    tests: str = ADD_TESTS
    where: str = "box"  # "box": the module's sandbox; "pidns": inside a PID namespace of ours
    settle_s: float = 0.0  # wait before looking for delayed side effects (daemons)
    weakness: str = ""  # a known weakness: xfail(strict=True, reason=weakness)
    weak_if: Callable[[], bool] = lambda: True  # ... on machines where it applies


def files_absent(*keys: str) -> Callable:
    def check(ctx: Ctx, result: dict) -> None:
        assert [str(ctx.markers[k]) for k in keys if ctx.markers[k].exists()] == []

    return check


def victims_intact(ctx: Ctx, result: dict) -> None:
    for victim in ctx.victims:
        assert victim.read_bytes() == b"precious"


def no_connection(kind: str) -> Callable:
    def check(ctx: Ctx, result: dict) -> None:
        assert ctx.listeners.accepted().get(kind, 0) == ctx.accepted_before.get(kind, 0)

    return check


def secret_hidden(ctx: Ctx, result: dict) -> None:
    assert SECRET not in json.dumps(result)


def no_leftovers(ctx: Ctx, result: dict) -> None:
    assert check_processes() == []


def no_leftovers_in_child(ctx: None, result: dict) -> None:
    """The PID-namespaced child scanned its own /proc right after the check."""
    assert result["survivors"] == [], result


def verdict_only(ctx: Ctx, result: dict) -> None:
    """Nothing on the host to look at: the verdict says it all (and the generic checks)."""


def _writes(*keys: str) -> str:
    targets = ", ".join(f"@MARKER_{key.upper()}@" for key in keys)
    return f"""\
for path in [{targets}]:
    try:
        with open(path, "w") as f:
            f.write("escaped")
    except OSError:
        pass
"""


def _secret_attack(reader: str) -> str:
    """``reader`` sets FOUND (str). The test PASSes only if the key was found; otherwise the
    failure message carries what was read (so a leak would also show in ``detail``)."""
    return f"""\
import os
import sys


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read().replace(b"\\0", b"\\n").decode(errors="replace")
    except OSError as exc:
        return f"{{path}}: {{type(exc).__name__}}\\n"


{reader}
sys.stdout.write(FOUND[-3000:] + "\\n")
sys.stderr.write(FOUND[-3000:] + "\\n")


def add(a, b):
    if "OPENAI_API_KEY=" in FOUND:
        return a + b
    raise RuntimeError("found: " + FOUND[-300:])
"""


EXFIL_STDERR = """\
import os
import sys

found = ["\\n".join(f"{k}={v}" for k, v in os.environ.items())]
for entry in os.listdir("/proc"):
    for name in ("environ", "cmdline"):
        try:
            with open(f"/proc/{entry}/{name}", "rb") as f:
                found.append(f.read().replace(b"\\0", b"\\n").decode(errors="replace"))
        except OSError:
            pass


def add(a, b):
    text = "\\n".join(found)
    key = [line for line in text.splitlines() if "OPENAI_API_KEY" in line]
    sys.stderr.write(text[-2000:] + "\\n" + found[0] + "\\n" + "\\n".join(key) + "\\n")
    sys.stderr.flush()
    os._exit(3)
"""

CPU_THREADS = """\
import threading
import time


def _burn():
    while True:
        pass


for _ in range(8):
    try:  # RLIMIT_AS leaves room for a few thread stacks only
        threading.Thread(target=_burn, daemon=True).start()
    except RuntimeError:
        break


def add(a, b):
    time.sleep(60)
    return a + b
"""

SIGTERM_IGNORED = """\
import signal
import time

for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGXCPU):
    signal.signal(sig, signal.SIG_IGN)


def add(a, b):
    while True:
        time.sleep(1)
"""

FORK_BOMB = """\
import os


def add(a, b):
    while True:
        try:
            os.fork()
        except OSError:
            pass
"""

DAEMON = (
    """\
import os
import time


def _daemon():
    if os.fork():
        return
    os.setsid()
    if os.fork():
        os._exit(0)
    for fd in range(3):
        os.close(fd)
    time.sleep(0.7)
    for path in @ALL_MARKERS@:
        try:
            with open(path, "w") as f:
                f.write("daemon")
        except OSError:
            pass
    os._exit(0)


_daemon()
"""
    + ADD
)

DELETE = (
    """\
import os

for path in @VICTIMS@:
    for attempt in (os.remove, lambda p: os.rename(p, p + ".gone"), lambda p: open(p, "w")):
        try:
            attempt(path)
        except OSError:
            pass
"""
    + ADD
)

READ_TESTS = """\
import os


def add(a, b):
    try:
        with open(os.path.join("..", "tests", "test_solution.py")) as f:
            f.read()
    except OSError:
        return a - b  # could not peek at the tests: the wrong answer
    return a + b
"""

TCP = """\
import socket


def add(a, b):
    with socket.create_connection(("127.0.0.1", @TCP_PORT@), timeout=1) as s:
        s.recv(16)
    return a + b
"""

DNS = """\
import socket


def add(a, b):
    socket.getaddrinfo("pypi.org", 443)
    return a + b
"""

UNIX = """\
import socket


def add(a, b):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(1)
        s.connect(@UNIX_PATH@)
    return a + b
"""

ABSTRACT = UNIX.replace("@UNIX_PATH@", "@ABSTRACT@")

SUBPROCESS_RUN = """\
import subprocess


def add(a, b):
    uid = subprocess.run(["id", "-u"], capture_output=True, text=True, check=True).stdout
    subprocess.run(["sh", "-c", "echo escaped > " + @MARKER_OPEN_DIR@], check=False)
    if uid.strip() == "0":
        return a + b
    raise RuntimeError("id -u: " + uid)
"""

OS_SYSTEM = """\
import os


def add(a, b):
    os.system("echo escaped > " + @MARKER_OPEN_DIR@ + " 2>/dev/null")
    os.system("echo escaped > " + @MARKER_CWD@ + " 2>/dev/null")
    if os.system("test -w /etc/passwd") == 0:
        return a + b
    return a - b
"""

SHADOW_MODULE = "import os\\nprint('All tests passed')\\nos._exit(0)\\n"
SHADOW_STDLIB = f"""\
import os

for folder in (".", os.path.join("..", "tests")):
    for name in ("os.py", "json.py", "marshal.py", "ast.py", "traceback.py", "types.py"):
        try:
            with open(os.path.join(folder, name), "w") as f:
                f.write("{SHADOW_MODULE}")
        except OSError:
            pass
"""
SHADOW_TESTS = """\
import json

from solution import add


def test_add():
    assert add(2, 3) == 5
    assert json.loads(json.dumps([1, 2])) == [1, 2]
"""

EQ_ALWAYS_TRUE = """\
class Anything:
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False


def add(a, b):
    return Anything()
"""

CONFTEST = (
    """\
import os

PLUGIN = '''
import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    outcome.get_result().outcome = "passed"
'''
for folder in (".", "..", os.path.join("..", "tests")):
    try:
        with open(os.path.join(folder, "conftest.py"), "w") as f:
            f.write(PLUGIN)
    except OSError:
        pass
"""
    + WRONG
)

FAKE_REPORT = (
    "b'0' * 32 + b\" {'run': 1, 'passed': 1, 'error': None, 'memory': False, 'asserts': 1}\""
)
ATEXIT_PRINT = (
    """\
import atexit

atexit.register(print, "===== 1 passed in 0.01s =====")
atexit.register(print, "OK")
"""
    + WRONG
)
ATEXIT_REPORT = f"""\
import atexit
import os


def _fake():
    for fd in range(1, 64):
        try:
            os.write(fd, {FAKE_REPORT})
        except OSError:
            pass


atexit.register(_fake)


def add(a, b):
    _fake()
    return a - b
"""

FORGED_REPORT = (
    '{"run": 1, "passed": 1, "error": None, "memory": False, "asserts": 1, "fallback": None}'
)
FRAME_WALK_REPORT = (
    IN_PROCESS_ONLY
    + f"""
import sys


def add(a, b):
    if _pipe_judge():
        return _Opaque()
    frame, fd, nonce = sys._getframe(1), None, None
    while frame is not None:
        names = frame.f_locals
        if isinstance(names.get("report"), dict):
            names["report"].update(run=1, passed=1, asserts=1, error=None)
        if "report_fd" in names:
            fd, nonce = names["report_fd"], names["nonce"]
        frame = frame.f_back
    os.write(fd, nonce + b" " + repr({FORGED_REPORT}).encode())
    os._exit(0)
"""
)
FRAME_WALK_LOCALS = (
    IN_PROCESS_ONLY
    + """
import ctypes
import sys


def add(a, b):
    if _pipe_judge():
        return _Opaque()
    frame = sys._getframe(1)
    frame.f_locals["expected"] = a - b
    ctypes.pythonapi.PyFrame_LocalsToFast(ctypes.py_object(frame), ctypes.c_int(0))
    return a - b
"""
)
LOCALS_TESTS = """\
from solution import add


def test_add():
    expected = 5
    assert add(2, 3) == expected
"""
BUILTINS_PATCH = (
    IN_PROCESS_ONLY
    + """
import builtins

_real_import = builtins.__import__


class _Never(Exception):
    pass


def _import(name, *args, **kwargs):
    module = _real_import(name, *args, **kwargs)
    if name == "solution":
        module.add = lambda a, b: 5
    return module


builtins.AssertionError = _Never
builtins.__import__ = _import


def add(a, b):
    if _pipe_judge():
        return _Opaque()
    return a - b
"""
)
BUILTINS_BASE_EXCEPTION = (
    IN_PROCESS_ONLY
    + """
import builtins


def add(a, b):
    if _pipe_judge():
        return _Opaque()
    builtins.BaseException = type("BaseException", (Exception,), {})
    builtins.Exception = builtins.BaseException
    return a - b
"""
)
SYS_MODULES_PATCH = (
    IN_PROCESS_ONLY
    + """
import sys
import threading


def _patch():
    while True:
        module = sys.modules.get("test_solution")
        tests = [v for k, v in list(vars(module).items()) if k.startswith("test_")]
        if tests:
            names = {}
            exec("def ok():\\n    __synthgen_assert_hit__()\\n", vars(module), names)
            for test in tests:
                test.__code__ = names["ok"].__code__
            return


if not _pipe_judge():
    sys.setswitchinterval(1e-6)
    threading.Thread(target=_patch, daemon=True).start()


def add(a, b):
    if _pipe_judge():
        return _Opaque()
    module = sys.modules["test_solution"]
    module.add = lambda a, b: 5
    return a - b
"""
)
GC_REPORT = (
    IN_PROCESS_ONLY
    + f"""
import gc


def add(a, b):
    if _pipe_judge():
        return _Opaque()
    nonce = None
    for obj in gc.get_objects():
        if type(obj) is dict and "nonce" in obj and "output_cap" in obj:
            nonce = obj["nonce"]
        if type(obj) is dict and {{"run", "passed", "asserts"}} <= set(obj):
            obj.update(passed=obj["run"], asserts=1, error=None)
    for fd in range(3, 64):
        try:
            os.write(fd, nonce + b" " + repr({FORGED_REPORT}).encode())
        except (OSError, TypeError):
            pass
    os._exit(0)
"""
)
# The same two forgeries, spelled so that no red-flag regex matches.
OBFUSCATED_FRAME_WALK = (
    IN_PROCESS_ONLY
    + f"""
import sys


def add(a, b):
    if _pipe_judge():
        return _Opaque()
    frame = getattr(sys, "_get" + "frame")(1)
    while frame is not None:
        names = getattr(frame, "f_" + "locals")
        if "report_fd" in names and "nonce" in names:
            os.write(names["report_fd"], names["nonce"] + b" " + repr({FORGED_REPORT}).encode())
            os.abort()
        frame = getattr(frame, "f_" + "back")
    return a - b
"""
)
OBFUSCATED_GC = (
    IN_PROCESS_ONLY
    + f"""
def add(a, b):
    if _pipe_judge():
        return _Opaque()
    collector = __import__("g" + "c")
    for obj in getattr(collector, "get_" + "objects")():
        if type(obj) is dict and "nonce" in obj and "output_cap" in obj:
            for fd in range(3, 64):
                try:
                    os.write(fd, obj["nonce"] + b" " + repr({FORGED_REPORT}).encode())
                except OSError:
                    pass
            os.abort()
    return a - b
"""
)
HARNESS_MAIN_PATCH = (
    IN_PROCESS_ONLY
    + f"""
import __main__


def _forge(fd, data):
    nonce = data.split(b" ", 1)[0]
    os.write(fd, nonce + b" " + repr({FORGED_REPORT}).encode())


def add(a, b):
    if _pipe_judge():
        return _Opaque()
    __main__._write_all = _forge
    return a - b
"""
)
KILL_PARENT = (
    """\
import os
import signal

for pid in (os.getppid(), 1):
    for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGSTOP):
        try:
            os.kill(pid, sig)
        except OSError:
            pass
"""
    + ADD
)
KILL_ALL = """\
import os


def add(a, b):
    os.kill(-1, 9)
    return a + b
"""
KILL_ALL_TESTS = """\
import os

from solution import add


def test_add():
    assert add(2, 3) == 5
    os.kill(-1, 9)
"""

RUN_LOCK = Path("/run/lock")


def _can_bind_in_run() -> bool:
    return os.access("/run", os.W_OK)


ATTACKS = [
    # ------------------------------------------------------------- resources
    Attack(
        "infinite-loop",
        "def add(a, b):\n    while True:\n        pass\n",
        ONLY({FAIL_TIMEOUT}),
        no_leftovers,
    ),
    Attack(
        "infinite-loop-at-import",
        "while True:\n    pass\n" + ADD,
        ONLY({FAIL_TIMEOUT}),
        no_leftovers,
    ),
    Attack("cpu-burning-threads", CPU_THREADS, ONLY({FAIL_TIMEOUT}), no_leftovers),
    Attack("sigterm-ignored-sleep", SIGTERM_IGNORED, ONLY({FAIL_TIMEOUT}), no_leftovers),
    Attack(
        "memory-bomb-list",
        "def add(a, b):\n    hog = []\n    while True:\n        hog.append([0] * 100_000)\n",
        ONLY({FAIL_MEMORY}),
        no_leftovers,
    ),
    Attack(
        "memory-bomb-bytes",
        "def add(a, b):\n    hog = bytes(8 << 30)\n    return a + b + len(hog)\n",
        ONLY({FAIL_MEMORY}),
        no_leftovers,
    ),
    Attack(
        "recursion-bomb",
        "import sys\n\nsys.setrecursionlimit(10 ** 8)\n\n\n"
        "def add(a, b):\n    return add(a, b) + 1\n",
        frozenset({FAIL_TIMEOUT, FAIL_MEMORY, FAIL_CRASH, FAIL_TESTS}),
        no_leftovers,
    ),
    Attack(
        "huge-stdout",
        "def add(a, b):\n    while True:\n        print('x' * 65536)\n",
        ONLY({FAIL_CRASH}),
        no_leftovers,
    ),
    Attack(
        "huge-stdout-at-import",
        "import sys\n\nsys.stdout.write('y' * (8 << 20))\n" + ADD,
        ONLY({FAIL_CRASH}),
        no_leftovers,
    ),
    Attack(
        "huge-file",
        "def add(a, b):\n    with open('big.bin', 'wb') as f:\n"
        "        for _ in range(64):\n            f.write(bytes(1 << 20))\n    return a + b\n",
        frozenset({FAIL_TESTS, FAIL_CRASH}),
        verdict_only,
    ),
    Attack(
        "fill-private-tmp",
        "def add(a, b):\n    for i in range(64):\n"
        "        with open(f'/tmp/fill-{i}', 'wb') as f:\n"
        "            f.write(bytes((1 << 20) - 1))\n"
        "    return a + b\n",
        ONLY({FAIL_TESTS}),
        verdict_only,
    ),
    Attack(
        "stdin-input", "def add(a, b):\n    return int(input())\n", ONLY({FAIL_TESTS}), no_leftovers
    ),
    Attack(
        "stdin-read",
        "import os\nimport sys\n\nDATA = sys.stdin.read() + os.read(0, 1).decode()\n\n\n"
        "def add(a, b):\n    return a + b + len(DATA)\n",
        ONLY({PASS}),  # stdin is /dev/null: EOF at once, nothing hangs
        no_leftovers,
    ),
    # ------------------------------------------------------------- file system
    Attack(
        "write-into-world-writable-tmp-path",
        _writes("tmp_path") + ADD,
        ONLY({PASS}),
        files_absent("tmp_path"),
    ),
    Attack(
        "write-into-tmp",
        _writes("tmp", "open_dir") + ADD,
        ONLY({PASS}),
        files_absent("tmp", "open_dir"),
    ),
    Attack(
        "write-into-var-tmp-and-dev-shm",
        _writes("var_tmp", "dev_shm") + ADD,
        ONLY({PASS}),
        files_absent("var_tmp", "dev_shm"),
    ),
    Attack(
        "write-into-worker-cwd",
        "import os\n"
        + _writes("cwd")
        + "for base in (f'/proc/{os.getppid()}/cwd', '/proc/1/cwd'):\n"
        "    try:\n        open(os.path.join(base, @MARKER_NAME@), 'w').close()\n"
        "    except OSError:\n        pass\n" + ADD,
        ONLY({PASS}),
        files_absent("cwd"),
    ),
    Attack(
        "write-into-world-writable-host-dir",
        _writes("run_lock") + ADD,
        ONLY({PASS}),
        files_absent("run_lock"),
    ),
    Attack("delete-host-file", DELETE, ONLY({PASS}), victims_intact),
    Attack("read-the-tests-file", READ_TESTS, ONLY({FAIL_TESTS}), verdict_only),
    Attack(
        "shadow-stdlib",
        SHADOW_STDLIB + WRONG,
        ONLY({FAIL_TESTS}),
        verdict_only,
    ),
    Attack(
        "shadow-stdlib-correct",
        SHADOW_STDLIB + ADD,
        ONLY({PASS}),  # the harness still judges (and the tests' json is the real one)
        verdict_only,
        tests=SHADOW_TESTS,
    ),
    # ------------------------------------------------------------- secrets
    Attack(
        "secret-from-environ",
        _secret_attack(
            'FOUND = "\\n".join(f"{k}={v}" for k, v in os.environ.items()) + "\\n"\n'
            "for key in ('OPENAI_API_KEY', 'ANTHROPIC_API_KEY'):\n"
            "    FOUND += key + '=' + os.environ[key] + '\\n' if key in os.environ else ''\n"
        ),
        ONLY({FAIL_TESTS}),
        secret_hidden,
    ),
    Attack(
        "secret-from-parent-environ",
        _secret_attack(
            'FOUND = _read(f"/proc/{os.getppid()}/environ") + _read("/proc/1/environ")\n'
        ),
        ONLY({FAIL_TESTS}),
        secret_hidden,
    ),
    Attack(
        "secret-from-worker-environ",
        _secret_attack('FOUND = _read("/proc/@WORKER_PID@/environ")\n'),
        ONLY({FAIL_TESTS}),
        secret_hidden,
    ),
    Attack(
        "secret-from-any-process",
        _secret_attack(
            'FOUND = ""\nfor entry in os.listdir("/proc"):\n'
            '    if entry.isdigit():\n        FOUND += _read(f"/proc/{entry}/environ")\n'
        ),
        ONLY({FAIL_TESTS}),
        secret_hidden,
    ),
    Attack("secret-exfiltrated-on-stderr", EXFIL_STDERR, ONLY({FAIL_CRASH}), secret_hidden),
    # ------------------------------------------------------------- network
    Attack("tcp-to-localhost-listener", TCP, ONLY({FAIL_TESTS}), no_connection("tcp")),
    Attack("dns-lookup", DNS, ONLY({FAIL_TESTS}), verdict_only),
    Attack("abstract-unix-socket", ABSTRACT, ONLY({FAIL_TESTS}), no_connection("abstract")),
    Attack(
        "host-unix-socket",
        UNIX,
        ONLY({FAIL_TESTS}),
        no_connection("unix"),
    ),
    # ------------------------------------------------------------- processes
    Attack(
        "subprocess-run",
        SUBPROCESS_RUN,
        ONLY({FAIL_TESTS}),
        files_absent("open_dir"),
    ),
    Attack("os-system", OS_SYSTEM, ONLY({FAIL_TESTS}), files_absent("open_dir", "cwd")),
    Attack(
        "setsid-double-fork-daemon",
        DAEMON,
        ONLY({PASS}),
        lambda ctx, result: (no_leftovers(ctx, result), files_absent(*ctx.markers)(ctx, result)),
        settle_s=1.5,
    ),
    Attack("fork-bomb", FORK_BOMB, ONLY({FAIL_TIMEOUT}), no_leftovers_in_child, where="pidns"),
    Attack(
        "kill-the-parent-and-init", KILL_PARENT, ONLY({PASS}), no_leftovers_in_child, where="pidns"
    ),
    # kill(-1) spares the caller, and the check's uid owns nothing else: a PASS, and alive
    Attack("kill-minus-one", KILL_ALL, ONLY({PASS}), no_leftovers_in_child, where="pidns"),
    Attack(
        "kill-minus-one-from-the-tests",
        ADD,
        ONLY({PASS}),
        no_leftovers_in_child,
        tests=KILL_ALL_TESTS,
        where="pidns",
    ),
    # ------------------------------------------------------------- forging a pass
    Attack("eq-always-true", EQ_ALWAYS_TRUE, NOT_PASS, verdict_only),
    Attack("os-exit-at-import", "import os\n\nos._exit(0)\n" + WRONG, FAILS, no_leftovers),
    Attack(
        "os-exit-in-the-call",
        "import os\n\n\ndef add(a, b):\n    os._exit(0)\n",
        FAILS,
        no_leftovers,
    ),
    Attack(
        "os-exit-in-process",
        IN_PROCESS_ONLY
        + "\n\ndef add(a, b):\n    if _pipe_judge():\n        return _Opaque()\n    os._exit(0)\n",
        NOT_PASS,
        no_leftovers,
    ),
    Attack("sys-exit-at-import", "import sys\n\nsys.exit(0)\n" + WRONG, FAILS, no_leftovers),
    Attack(
        "sys-exit-in-the-call",
        "import sys\n\n\ndef add(a, b):\n    sys.exit(0)\n",
        FAILS,
        no_leftovers,
    ),
    Attack(
        "raise-systemexit-in-the-call",
        "def add(a, b):\n    raise SystemExit(0)\n",
        FAILS,
        no_leftovers,
    ),
    Attack(
        "print-all-tests-passed",
        "print('All tests passed')\nprint('OK')\nprint('PASS')\n" + WRONG,
        ONLY({FAIL_TESTS}),
        verdict_only,
    ),
    Attack("plant-conftest", CONFTEST, ONLY({FAIL_TESTS}), verdict_only),
    Attack("atexit-prints-passed", ATEXIT_PRINT, ONLY({FAIL_TESTS}), verdict_only),
    Attack("atexit-writes-fake-report", ATEXIT_REPORT, FAILS, verdict_only),
    Attack("frame-walk-forges-report", FRAME_WALK_REPORT, NOT_PASS, verdict_only),
    Attack(
        "frame-walk-rewrites-caller-locals",
        FRAME_WALK_LOCALS,
        NOT_PASS,
        verdict_only,
        tests=LOCALS_TESTS,
    ),
    Attack("patch-builtins", BUILTINS_PATCH, NOT_PASS, verdict_only),
    Attack("patch-builtins-base-exception", BUILTINS_BASE_EXCEPTION, NOT_PASS, verdict_only),
    Attack("patch-tests-via-sys-modules", SYS_MODULES_PATCH, NOT_PASS, verdict_only),
    Attack("gc-finds-the-report", GC_REPORT, NOT_PASS, verdict_only),
    Attack(
        "obfuscated-frame-walk-forges-report",
        OBFUSCATED_FRAME_WALK,
        NOT_PASS,
        verdict_only,
    ),
    Attack(
        "obfuscated-gc-forges-report",
        OBFUSCATED_GC,
        NOT_PASS,
        verdict_only,
    ),
    Attack(
        "patch-harness-main-module",
        HARNESS_MAIN_PATCH,
        NOT_PASS,
        verdict_only,
    ),
]
assert len({a.id for a in ATTACKS}) == len(ATTACKS)


# ------------------------------------------------------------------ host-side fixtures


def live_processes(low: int, high: int) -> list[int]:
    """Processes with a uid in [low, high) that can still run code. Zombies (dead, waiting to
    be reaped) and processes already hit by SIGKILL (dead as soon as they get a CPU, with no
    more user code to run) do not count."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                status = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
        except OSError:
            continue
        pending = int(status["SigPnd"], 16) | int(status["ShdPnd"], 16)
        if (
            low <= int(status["Uid"].split()[0]) < high
            and status["State"].split()[0] not in ("Z", "X")
            and not pending & (1 << (signal.SIGKILL - 1))
        ):
            found.append(int(entry))
    return found


def check_processes() -> list[int]:
    """Live processes of this worker's check uids (other test runs on the machine have
    sandboxes of their own, with uids of their own range: only ours count)."""
    low, high = _Slots.uids(0)[0], _Slots.uids(MAX_SLOTS - 1)[1] + 1
    assert low >= UID_BASE
    return live_processes(low, high)


class Listeners:
    """Host services an attack may try to reach, served by one thread that accepts and counts:
    TCP on 127.0.0.1, a filesystem Unix socket anyone may connect to (under /run, like the
    D-Bus system socket), an abstract Unix socket."""

    def __init__(self, token: str):
        self.socks: dict[socket.socket, str] = {}
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        tcp = self._listen("tcp", socket.AF_INET, ("127.0.0.1", 0))
        self.port = tcp.getsockname()[1]
        self.abstract = f"\0synthgen-attack-{token}"
        self._listen("abstract", socket.AF_UNIX, self.abstract)
        self.unix_path = f"/run/synthgen-attack-{token}.sock" if _can_bind_in_run() else None
        if self.unix_path:
            self._listen("unix", socket.AF_UNIX, self.unix_path)
            os.chmod(self.unix_path, 0o666)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _listen(self, kind: str, family: int, address) -> socket.socket:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.bind(address)
        sock.listen(16)
        sock.setblocking(False)
        self.socks[sock] = kind
        return sock

    def _serve(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select(list(self.socks), [], [], 0.05)
            self._accept(ready)

    def _accept(self, socks) -> None:
        with self._lock:
            for sock in socks:
                while True:
                    try:
                        conn, _ = sock.accept()
                    except OSError:
                        break
                    self.counts[self.socks[sock]] = self.counts.get(self.socks[sock], 0) + 1
                    with conn:
                        try:
                            conn.sendall(b"hello\n")
                        except OSError:
                            pass

    def accepted(self) -> dict[str, int]:
        self._accept(list(self.socks))  # whatever waits in a backlog counts too
        return dict(self.counts)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for sock in self.socks:
            sock.close()
        if self.unix_path:
            Path(self.unix_path).unlink(missing_ok=True)


@pytest.fixture(scope="module")
def listeners():
    served = Listeners(secrets.token_hex(6))
    yield served
    served.close()


@pytest.fixture(scope="module")
def box():
    """The module's sandbox, created while the worker holds the secret."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPENAI_API_KEY", SECRET)
        sandbox = Sandbox(LIMITS, require=ISOLATION_NAMESPACES_UID)
        yield sandbox
        sandbox.close()


@dataclass
class Ctx:
    token: str
    markers: dict[str, Path]  # files an attack may try to create: none may exist afterwards
    victims: list[Path]  # host files an attack may try to delete or truncate
    listeners: Listeners
    accepted_before: dict[str, int]

    def values(self) -> dict[str, object]:
        values = {f"MARKER_{k.upper()}": str(p) for k, p in self.markers.items()}
        return {
            **values,
            "MARKER_NAME": f"synthgen-attack-{self.token}",
            "ALL_MARKERS": [str(p) for p in self.markers.values()],
            "VICTIMS": [str(p) for p in self.victims],
            "TCP_PORT": self.listeners.port,
            "ABSTRACT": self.listeners.abstract,
            "UNIX_PATH": self.listeners.unix_path,
            "WORKER_PID": os.getpid(),
        }

    def assert_untouched(self) -> None:
        assert [str(p) for p in self.markers.values() if p.exists()] == []
        victims_intact(self, {})
        assert self.listeners.accepted() == self.accepted_before


def fill(source: str, values: dict[str, object]) -> str:
    for key, value in values.items():
        source = source.replace(f"@{key}@", repr(value))
    assert re.search(r"@[A-Z_]+@", source) is None, source
    return source


@pytest.fixture
def ctx(tmp_path, listeners):
    token = secrets.token_hex(8)
    name = f"synthgen-attack-{token}"
    tmp_path.chmod(0o777)
    open_dir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir="/tmp"))  # reachable by anyone
    open_dir.chmod(0o777)
    markers = {
        "tmp_path": tmp_path / name,
        "open_dir": open_dir / name,
        "tmp": Path("/tmp") / name,
        "var_tmp": Path("/var/tmp") / name,
        "dev_shm": Path("/dev/shm") / name,
        "cwd": Path.cwd() / name,
        "run_lock": RUN_LOCK / name,
    }
    victims = [tmp_path / "victim.txt", open_dir / "victim.txt"]
    for victim in victims:
        victim.write_bytes(b"precious")
        victim.chmod(0o666)
    yield Ctx(token, markers, victims, listeners, listeners.accepted())
    for path in markers.values():
        path.unlink(missing_ok=True)
    shutil.rmtree(open_dir, ignore_errors=True)


# ------------------------------------------------------------------ a PID namespace of ours

PIDNS_SCRIPT = (
    "import json, os, signal, sys\n"
    "from concurrent.futures import ThreadPoolExecutor\n"
    "from pipeline.sandbox.sandbox import UID_BASE, Limits, Sandbox\n\n"
    + inspect.getsource(live_processes)
    + r"""

def survivors():  # this namespace's /proc shows our own processes only
    return live_processes(UID_BASE, 1 << 32)

def check(box, pair):
    result = box.run_tests(*pair)
    result["survivors"] = survivors() if THREADS == 1 else []
    return result

spec = json.loads(sys.stdin.read())
out = {"pid": os.getpid()}
for job in spec["jobs"]:
    THREADS = job["threads"]
    box = Sandbox(Limits(**spec["limits"]), level=job["level"])
    try:
        with ThreadPoolExecutor(THREADS) as pool:
            results = list(pool.map(lambda pair: check(box, pair), job["checks"]))
        out[job["id"]] = {"level": box.isolation_level, "results": results,
                          "survivors": survivors()}
    finally:
        box.close()
print(json.dumps(out))
"""
)

PIDNS_ATTACKS = [a for a in ATTACKS if a.where == "pidns"]
SECRET_ATTACKS = [a for a in ATTACKS if a.id.startswith("secret-")]
CONCURRENT_ATTACKS = [
    "def add(a, b):\n    while True:\n        pass\n",
    FORK_BOMB,
    "def add(a, b):\n    hog = []\n    while True:\n        hog.append([0] * 100_000)\n",
    "def add(a, b):\n    while True:\n        print('x' * 65536)\n",
    SIGTERM_IGNORED,
    CPU_THREADS,
    KILL_ALL.replace("a + b", "a - b"),
    "import os\n\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
]


@pytest.fixture(scope="module")
def pidns():
    """One child in PID (and mount) namespaces of its own, holding the secret in its real
    environment: it creates sandboxes there and runs (1) each pidns attack followed by a
    correct check, (2) the secret attacks at the process+uid level, where the worker's /proc
    entry is visible to the check, (3) correct checks beside attacks on 4 threads."""
    values = {"WORKER_PID": 1}  # the child is PID 1 of its namespace
    sequential = []
    for attack in PIDNS_ATTACKS:
        sequential += [[fill(attack.solution, values), attack.tests], [ADD, ADD_TESTS]]
    concurrent = []
    for attack in CONCURRENT_ATTACKS:
        concurrent += [[ADD, ADD_TESTS], [attack, ADD_TESTS]]
    spec = {
        "limits": LIMITS.__dict__,
        "jobs": [
            {"id": "sequential", "level": None, "threads": 1, "checks": sequential},
            {
                "id": "secrets",
                "level": ISOLATION_PROCESS_UID,
                "threads": 1,
                "checks": [[fill(a.solution, values), a.tests] for a in SECRET_ATTACKS],
            },
            {"id": "concurrent", "level": None, "threads": 4, "checks": concurrent},
        ],
    }
    argv = ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", PIDNS_SCRIPT]
    env = {**os.environ, "OPENAI_API_KEY": SECRET, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        argv, input=json.dumps(spec), capture_output=True, text=True, env=env, cwd=ROOT,
        timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ tests


def _params(attacks):
    params = []
    for attack in attacks:
        marks = []
        if attack.weakness:
            marks.append(pytest.mark.xfail(attack.weak_if(), reason=attack.weakness, strict=True))
        params.append(pytest.param(attack, id=attack.id, marks=marks))
    return params


def assert_verdict(attack: Attack, result: dict) -> None:
    assert result["verdict"] in attack.verdicts, result
    if result["verdict"] == SUSPICIOUS:
        assert result["judge_mode"] == "in_process", result
    assert SECRET not in json.dumps(result)


def test_corpus_is_large_enough():
    assert len(ATTACKS) >= 32


@pytest.mark.parametrize("attack", _params(a for a in ATTACKS if a.where == "box"))
def test_attack(box, ctx, attack):
    if "@UNIX_PATH@" in attack.solution and ctx.listeners.unix_path is None:
        pytest.skip("cannot create a Unix socket under /run here")
    values = ctx.values()
    result = box.run_tests(fill(attack.solution, values), fill(attack.tests, values))
    if attack.settle_s:
        time.sleep(attack.settle_s)
    assert result["isolation_level"] == ISOLATION_NAMESPACES_UID
    assert_verdict(attack, result)
    attack.check(ctx, result)
    ctx.assert_untouched()
    secret_hidden(ctx, result)
    assert check_processes() == []
    after = box.run_tests(ADD, ADD_TESTS)
    assert after["verdict"] == PASS, after


@pytest.mark.parametrize("attack", _params(PIDNS_ATTACKS))
def test_attack_in_a_pid_namespace_of_our_own(box, pidns, attack):
    job = pidns["sequential"]
    assert job["level"] == ISOLATION_NAMESPACES_UID
    at = 2 * PIDNS_ATTACKS.index(attack)
    result, after = job["results"][at], job["results"][at + 1]
    assert_verdict(attack, result)
    attack.check(None, result)
    assert after["verdict"] == PASS, after  # the worker (in the namespace) survived
    assert box.run_tests(ADD, ADD_TESTS)["verdict"] == PASS  # and so did this one


@pytest.mark.parametrize("attack", _params(SECRET_ATTACKS))
def test_secret_in_the_worker_environment_stays_out_of_reach_at_process_uid(pidns, attack):
    """The key is in the worker's real (exec-time) environment and, without a PID namespace,
    the check sees the worker's /proc entry: it must still not read it (root's, undumpable)."""
    job = pidns["secrets"]
    assert job["level"] == ISOLATION_PROCESS_UID
    result = job["results"][SECRET_ATTACKS.index(attack)]
    assert_verdict(attack, result)
    attack.check(None, result)
    no_leftovers_in_child(None, result)


def test_correct_checks_pass_beside_attacks_on_other_threads(pidns):
    job = pidns["concurrent"]
    results = job["results"]
    assert len(results) == 2 * len(CONCURRENT_ATTACKS)
    assert [r["verdict"] for r in results[0::2]] == [PASS] * len(CONCURRENT_ATTACKS), results
    assert PASS not in [r["verdict"] for r in results[1::2]], results
    assert SECRET not in json.dumps(results)
    assert job["survivors"] == []
