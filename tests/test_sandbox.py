"""Sandbox: verdicts, limits and what candidate code cannot do."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pipeline import records
from pipeline.config import VerifyConfig
from pipeline.sandbox.sandbox import (
    ISOLATION_NAMESPACES,
    ISOLATION_PROCESS,
    JUDGE_IN_PROCESS,
    JUDGE_PIPE,
    LEVELS,
    UID_BASE,
    Limits,
    Sandbox,
    SandboxUnavailable,
    audit_flags,
    check_uid_range,
    probe,
)

TIMEOUT_S = 1.5

ADD = "def add(a, b):\n    return a + b\n"
ADD_TESTS = """\
from solution import add


def test_small():
    assert add(1, 2) == 3


def test_negative():
    assert add(-1, -2) == -3
"""
PASSING = "from solution import add\n\n\ndef test_ok():\n    assert add(1, 2) == 3\n"


LIMITS = Limits(timeout_s=TIMEOUT_S, memory_mb=256, max_output_kb=64)


@pytest.fixture(scope="module", params=["best", ISOLATION_NAMESPACES, ISOLATION_PROCESS])
def sandbox(request):
    """The strongest level this machine allows, bubblewrap's, and the plain process level."""
    if request.param == ISOLATION_NAMESPACES and not probe()["bwrap"]:
        pytest.skip("bubblewrap is not installed or not allowed here")
    box = Sandbox(LIMITS, level=None if request.param == "best" else request.param)
    yield box
    box.close()


def _uids_in_use(grace_s: float = 2.0) -> list[int]:
    """Host processes running as a check uid of this process's sandboxes. The sweep has sent
    SIGKILL to all of them before the check returns; on a loaded machine one may take a moment
    to finish exiting, so live ones are looked for again for up to ``grace_s`` (zombies are
    dead already: their namespace's init reaps them)."""
    ours = check_uid_range()
    deadline = time.monotonic() + grace_s
    while True:
        found = []
        for entry in Path("/proc").iterdir():
            try:
                status = (entry / "status").read_text()
            except (OSError, ValueError):
                continue
            uid = int(status.split("\nUid:")[1].split()[0])
            state = status.split("\nState:")[1].split()[0]
            if uid in ours and state not in ("Z", "X"):
                found.append(uid)
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def _gone_or_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


# --------------------------------------------------------------------------- basics


def test_limits_from_config():
    cfg = VerifyConfig(timeout_s=2.5, memory_mb=128, max_output_kb=8, max_file_mb=1)
    assert Limits.from_config(cfg) == Limits(2.5, 128, 8, 1, 16)


def test_isolation_level_is_known(sandbox):
    assert sandbox.isolation_level in LEVELS
    assert sandbox.isolation_level in probe()["levels"]


def test_correct_solution_passes(sandbox):
    result = sandbox.run_tests(ADD, ADD_TESTS)
    assert result["verdict"] == records.PASS, result
    assert (result["tests_run"], result["tests_passed"]) == (2, 2)
    assert result["isolation_level"] == sandbox.isolation_level
    assert set(result) == {
        "verdict",
        "tests_run",
        "tests_passed",
        "duration_s",
        "detail",
        "isolation_level",
        "judge_mode",
        "audit_flags",
        "stderr_tail",
    }
    assert result["judge_mode"] == JUDGE_PIPE


def test_wrong_solution_fails_with_the_first_failing_test(sandbox):
    result = sandbox.run_tests("def add(a, b):\n    return a - b\n", ADD_TESTS)
    assert result["verdict"] == records.FAIL_TESTS
    assert (result["tests_run"], result["tests_passed"]) == (2, 0)
    assert "test_small" in result["detail"] and "AssertionError" in result["detail"]
    assert "assert add(1, 2) == 3" in result["detail"]


@pytest.mark.parametrize(
    "tests",
    [
        "from solution import add\n",
        "",
        "from solution import add\ntest_value = 3\n",
        "from solution import test_helper\n",
    ],
    ids=["imports-only", "empty", "not-a-function", "imported-test"],
)
def test_no_tests_is_not_a_pass(sandbox, tests):
    result = sandbox.run_tests(ADD + "def test_helper():\n    pass\n", tests)
    assert result["verdict"] == records.FAIL_TESTS
    assert result["tests_run"] == 0
    assert "no tests" in result["detail"]


def test_tests_run_in_definition_order_and_all_are_counted(sandbox):
    tests = """\
order = []


def test_b():
    order.append("b")


def test_a():
    order.append("a")
    assert False, "boom"


def test_check_order():
    assert order == ["b", "a"]
"""
    result = sandbox.run_tests("", tests)
    assert result["verdict"] == records.FAIL_TESTS
    assert (result["tests_run"], result["tests_passed"]) == (3, 2)
    assert result["detail"].startswith("1/3 failed; test_a: AssertionError: boom")


def test_syntax_error_in_solution_fails(sandbox):
    result = sandbox.run_tests("def add(a, b) return a + b\n", ADD_TESTS)
    assert result["verdict"] == records.FAIL_TESTS
    assert "SyntaxError" in result["detail"]


def test_coroutine_test_is_not_a_pass(sandbox):
    result = sandbox.run_tests("", "async def test_never_runs():\n    assert False\n")
    assert result["verdict"] == records.FAIL_TESTS


# ----------------------------------------------------------------- cannot forge a pass

FORGED_REPORT = (
    "import sys\nimport os\n"
    "line = '0' * 32 + \" {'run': 1, 'passed': 1, 'error': None, 'memory': False}\\n\"\n"
)


@pytest.mark.parametrize(
    ("solution", "tests"),
    [
        ("import os\nos._exit(0)\n", PASSING),
        (ADD, "from solution import add\nimport os\n\ndef test_a():\n    os._exit(0)\n"),
        ("import sys\nsys.exit(0)\n", PASSING),
        (ADD, "import sys\nfrom solution import add\n\ndef test_a():\n    sys.exit(0)\n"),
        (ADD, "from solution import add\n\ndef test_a():\n    raise SystemExit(0)\n"),
        (
            "print('All tests passed')\nprint('PASS')\nimport os\nos._exit(0)\n",
            PASSING,
        ),
        (FORGED_REPORT + "print(line)\nos._exit(0)\n", PASSING),
        (
            FORGED_REPORT
            + "os.write(int(sys.argv[2]), b'ready\\n' + line.encode())\nos._exit(0)\n",
            PASSING,
        ),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n", PASSING),
        ("import os\nos.closerange(3, 64)\n", PASSING),
        (
            ADD,
            "import os\nfrom solution import add\n\n"
            "def test_fork():\n    if os.fork() == 0:\n        return\n    os._exit(0)\n",
        ),
        (ADD, "from solution import add\nimport atexit, os\natexit.register(os._exit, 0)\n"),
    ],
    ids=[
        "os-exit-at-import",
        "os-exit-in-test",
        "sys-exit-at-import",
        "sys-exit-in-test",
        "raise-systemexit-in-test",
        "prints-fake-success",
        "forged-report-on-stdout",
        "forged-report-on-report-fd",
        "kills-itself",
        "closes-report-fd",
        "forked-child-returns",
        "no-tests-then-atexit",
    ],
)
def test_early_exits_and_forgeries_never_pass(sandbox, solution, tests):
    result = sandbox.run_tests(solution, tests)
    assert result["verdict"] != records.PASS, result
    assert result["verdict"] in (records.FAIL_TESTS, records.FAIL_NO_REPORT, records.FAIL_CRASH), (
        result
    )


def test_exit_zero_without_report_is_no_report(sandbox):
    tests = "import os\nfrom solution import add\nos._exit(0)\n"
    assert sandbox.run_tests(ADD, tests)["verdict"] == records.FAIL_NO_REPORT


def test_solution_that_exits_during_a_call_is_a_crash(sandbox):
    result = sandbox.run_tests("import os\ndef add(a, b):\n    os._exit(0)\n", PASSING)
    assert result["verdict"] == records.FAIL_CRASH
    assert "solution process died" in result["detail"]
    assert "os_exit" in result["audit_flags"]


# ------------------------------------------------------------------------- judging


ALWAYS_EQUAL = """\
class Anything:
    def __eq__(self, other):
        return True


def add(a, b):
    return Anything()
"""


def test_an_always_equal_object_never_reaches_the_tests_as_a_pass(sandbox):
    """Not plain data, so judged in-process, where asserts compare on plain data."""
    result = sandbox.run_tests(ALWAYS_EQUAL, ADD_TESTS)
    assert result["judge_mode"] == JUDGE_IN_PROCESS
    assert result["verdict"] == records.FAIL_TESTS
    assert "eq_override" in result["audit_flags"]


@pytest.mark.parametrize(
    "trick",
    [
        "import sys\nsys._getframe(1)",
        "import gc\ngc.get_objects()",
        "try:\n    raise ValueError\nexcept ValueError as e:\n    e.__traceback__.tb_frame",
        "import ctypes\nctypes.string_at(id(1), 8)",
        "add.__code__ = (lambda a, b: 5).__code__",
    ],
    ids=["getframe", "gc", "tb-frame", "ctypes", "code-swap"],
)
def test_in_process_introspection_is_suspicious(sandbox, trick):
    """A class instance sends the check in-process; there any reach for frames, objects or
    memory ends it as SUSPICIOUS, however the source is written."""
    body = "\n    ".join(trick.splitlines())
    solution = f"class Box:\n    pass\n\n\ndef add(a, b):\n    {body}\n    return Box()\n"
    result = sandbox.run_tests(solution, ADD_TESTS)
    assert (result["verdict"], result["judge_mode"]) == (records.SUSPICIOUS, JUDGE_IN_PROCESS)


def test_namedtuples_are_not_suspicious_in_process(sandbox):
    solution = (
        "from collections import namedtuple\n\n"
        "def add(a, b):\n    Pair = namedtuple('Pair', 'x y')\n    return Pair(a + b, 0)[0:1]\n"
    )
    tests = "from solution import add\n\ndef test_add():\n    assert add(2, 3) == (5,)\n"
    result = sandbox.run_tests(solution, tests)
    assert result["verdict"] == records.PASS, result


@pytest.mark.parametrize(
    ("solution", "tests"),
    [
        (
            "def evens(n):\n    for i in range(0, n, 2):\n        yield i\n",
            "from solution import evens\n\n"
            "def test_evens():\n    assert list(evens(5)) == [0, 2, 4]\n",
        ),
        (
            "def push(items, x):\n    items.append(x)\n",
            "from solution import push\n\ndef test_push():\n"
            "    items = [1]\n    push(items, 2)\n    assert items == [1, 2]\n",
        ),
        (
            "class Stack:\n    def __init__(self):\n        self.items = []\n"
            "    def push(self, x):\n        self.items.append(x)\n"
            "    def size(self):\n        return len(self.items)\n",
            "from solution import Stack\n\ndef test_stack():\n"
            "    s = Stack()\n    s.push(1)\n    assert s.size() == 1\n",
        ),
        (
            "def apply(f, x):\n    return f(x)\n",
            "from solution import apply\n\ndef test_apply():\n    assert apply(abs, -3) == 3\n",
        ),
    ],
    ids=["generator", "mutates-argument", "class", "callable-argument"],
)
def test_what_cannot_cross_the_pipe_is_judged_in_process(sandbox, solution, tests):
    result = sandbox.run_tests(solution, tests)
    assert (result["verdict"], result["judge_mode"]) == (records.PASS, JUDGE_IN_PROCESS), result


def test_plain_data_crosses_the_pipe_exactly(sandbox):
    solution = (
        "def echo(x):\n    return x\n\n"
        "def fail(kind):\n    raise {'v': ValueError, 'k': KeyError}[kind]('bad')\n\nLIMIT = 10\n"
    )
    tests = """\
import math
from solution import LIMIT, echo, fail

VALUES = [None, True, 3, -2**80, 1.5, float('inf'), 2j, 'ü', b'\\x00', [1, (2, 3)],
          {'a': {1, 2}}, frozenset({4}), ()]


def test_echo():
    for value in VALUES:
        assert echo(value) == value and type(echo(value)) is type(value)
    assert math.isnan(echo(float('nan')))
    assert LIMIT == 10


def test_exceptions_keep_their_builtin_type():
    for kind, exc in (('v', ValueError), ('k', KeyError)):
        try:
            fail(kind)
        except exc:
            pass
        else:
            raise AssertionError('no exception')
"""
    result = sandbox.run_tests(solution, tests)
    assert (result["verdict"], result["judge_mode"]) == (records.PASS, JUDGE_PIPE), result


def test_tests_that_assert_nothing_do_not_pass(sandbox):
    tests = "from solution import add\n\ndef test_calls_only():\n    add(1, 2)\n"
    result = sandbox.run_tests(ADD, tests)
    assert result["verdict"] == records.FAIL_TESTS
    assert "no assert" in result["detail"]


def test_the_solution_cannot_read_the_tests(sandbox):
    if not sandbox.isolation_level.endswith("+uid"):
        pytest.skip("needs a uid per process")
    solution = (
        "import glob\nFOUND = sorted(glob.glob('../**/test_solution.py', recursive=True))\n"
        "def add(a, b):\n    return open(FOUND[0]).read() if FOUND else a + b\n"
    )
    result = sandbox.run_tests(solution, ADD_TESTS)
    assert result["verdict"] in (records.PASS, records.FAIL_TESTS)
    assert "PermissionError" in result["detail"] or result["verdict"] == records.PASS


@pytest.mark.parametrize(
    ("source", "flags"),
    [
        ("import os\nos._exit(0)\n", ["os_exit"]),
        ("import sys\nf = sys._getframe(1)\n", ["frame_walk"]),
        ("import gc\ngc.get_objects()\n", ["gc"]),
        ("import ctypes\n", ["ctypes"]),
        ("open('/proc/1/environ')\n", ["proc_fs"]),
        ("import atexit\n", ["atexit"]),
        ("import builtins\nbuiltins.print = None\n", ["builtins"]),
        ("import socket\n", ["socket"]),
        ("def add(a, b):\n    return a + b\n", []),
    ],
)
def test_audit_flags(source, flags):
    assert audit_flags(source) == flags


# ------------------------------------------------------------------------ resources


def test_infinite_loop_times_out_quickly(sandbox):
    start = time.monotonic()
    result = sandbox.run_tests("while True:\n    pass\n", PASSING)
    assert result["verdict"] == records.FAIL_TIMEOUT
    assert time.monotonic() - start < TIMEOUT_S + 2


def test_sleeping_program_times_out(sandbox):
    result = sandbox.run_program("import time\ntime.sleep(60)\n")
    assert result["verdict"] == records.FAIL_TIMEOUT


@pytest.mark.parametrize(
    "bomb",
    ["x = bytearray(4 << 30)\n", "x = []\nwhile True:\n    x.append(' ' * 1_000_000)\n"],
    ids=["one-allocation", "growing-list"],
)
def test_memory_bomb_is_fail_memory(sandbox, bomb):
    assert sandbox.run_tests(bomb, PASSING)["verdict"] == records.FAIL_MEMORY
    assert sandbox.run_program(bomb)["verdict"] == records.FAIL_MEMORY


def test_huge_output_is_capped(sandbox):
    start = time.monotonic()
    result = sandbox.run_program("while True:\n    print('x' * 10000)\n")
    assert result["verdict"] == records.FAIL_CRASH
    assert "output exceeded" in result["detail"]
    assert len(result["detail"]) <= 500
    assert time.monotonic() - start < TIMEOUT_S + 2


def test_huge_file_is_stopped_by_the_file_size_limit():
    box = Sandbox(Limits(timeout_s=TIMEOUT_S, max_file_mb=1))
    program = "with open('big', 'wb') as f:\n    f.write(b'x' * (2 << 20))\nprint('done')\n"
    result = box.run_program(program)
    assert result["verdict"] == records.FAIL_CRASH
    assert "File too large" in result["detail"]


def test_daemon_holding_stdout_does_not_hang_and_is_killed(sandbox):
    program = """\
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(60)
    os._exit(0)
print(os.getuid(), flush=True)
"""
    start = time.monotonic()
    result = sandbox.run_program(program)
    assert time.monotonic() - start < TIMEOUT_S
    assert result["verdict"] == records.PASS
    assert _uids_in_use() == []


# ----------------------------------------------------------------------- isolation


def test_candidate_sees_no_api_key(sandbox, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-value")
    program = "import os\nprint(sorted(os.environ.items()))\n"
    result = sandbox.run_program(program)
    assert result["verdict"] == records.PASS
    assert "OPENAI_API_KEY" not in result["stdout_last_line"]
    assert "sk-test-secret" not in result["stdout_last_line"]
    assert "PATH" not in result["stdout_last_line"]
    tests = (
        "import os\n\ndef test_env():\n"
        "    assert 'OPENAI_API_KEY' not in os.environ\n"
        "    assert not any('sk-test' in v for v in os.environ.values())\n"
    )
    assert sandbox.run_tests("", tests)["verdict"] == records.PASS


def test_worker_becomes_undumpable():
    code = (
        "import ctypes\nfrom pipeline.sandbox.sandbox import Sandbox\n"
        "Sandbox(level='process')\nprint(ctypes.CDLL(None).prctl(3, 0, 0, 0, 0))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "0"  # PR_GET_DUMPABLE


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any /proc; uid isolation covers root")
def test_candidate_cannot_read_the_workers_environ_via_proc():
    """The worker is started with a key in its environment (as a real worker is) and runs the
    candidate at the plain ``process`` level, the same uid as the worker."""
    worker = (
        "from pipeline.sandbox.sandbox import Sandbox, Limits\n"
        "box = Sandbox(Limits(timeout_s=5), level='process')\n"
        "program = ('import os\\n'\n"
        "  'try:\\n'\n"
        '  \'    data = open(f"/proc/{os.getppid()}/environ", "rb").read()\\n\'\n'
        '  \'    print("LEAK" if b"sk-proc-secret" in data else "clean")\\n\'\n'
        "  'except OSError:\\n'\n"
        "  '    print(\"denied\")\\n')\n"
        "print(box.run_program(program)['stdout_last_line'])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", worker],
        env={**os.environ, "OPENAI_API_KEY": "sk-proc-secret"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] in ("denied", "clean")


def test_candidate_runs_in_a_fresh_temp_dir_that_is_removed(sandbox):
    result = sandbox.run_program("import os\nprint(os.getcwd())\n")
    cwd = result["stdout_last_line"]
    assert "synthgen-check-" in cwd
    assert not os.path.exists(cwd)


def test_worker_packages_are_not_importable(sandbox):
    result = sandbox.run_program("import apache_beam\n")
    assert result["verdict"] == records.FAIL_CRASH
    assert "ModuleNotFoundError" in result["detail"]


def test_checks_run_as_uids_of_their_own_that_cannot_write_outside(sandbox):
    if not sandbox.isolation_level.endswith("+uid"):
        pytest.skip(f"{sandbox.isolation_level}: no uid per check")
    # A world-writable host directory outside /tmp, /var/tmp and /dev/shm (those are private
    # per check): only the read-only mounts (or, without them, nothing) keep the file out.
    host_dir = Path("/var/lib") / f"synthgen-escape-{os.getpid()}"
    host_dir.mkdir(mode=0o777)
    host_dir.chmod(0o777)
    target = host_dir / "escaped.txt"
    try:
        result = sandbox.run_program(f"open({str(target)!r}, 'w').write('x')\n")
        assert not target.exists()
    finally:
        target.unlink(missing_ok=True)
        host_dir.rmdir()
    assert result["verdict"] == records.FAIL_CRASH
    assert "Read-only file system" in result["detail"]
    assert int(sandbox.run_program("import os\nprint(os.getuid())\n")["stdout_last_line"]) >= (
        UID_BASE
    )


def test_process_limit_binds_when_uid_is_dropped(sandbox):
    if not sandbox.isolation_level.endswith("+uid"):
        pytest.skip(f"{sandbox.isolation_level}: RLIMIT_NPROC does not bind the worker's uid")
    program = """\
import os, time
children = 0
try:
    for _ in range(64):
        if os.fork() == 0:
            time.sleep(5)
            os._exit(0)
        children += 1
except OSError:
    pass
print(children)
"""
    result = sandbox.run_program(program)
    assert result["verdict"] == records.PASS
    assert int(result["stdout_last_line"]) < 16
    assert _uids_in_use() == []


# --------------------------------------------------------------- infra and programs


def test_program_prints_its_last_line(sandbox):
    result = sandbox.run_program("print('work')\nprint(6 * 7)\nprint()\n")
    assert result == {
        "verdict": records.PASS,
        "stdout_last_line": "42",
        "duration_s": result["duration_s"],
        "detail": "",
        "isolation_level": sandbox.isolation_level,
        "judge_mode": "program",
        "audit_flags": [],
        "stderr_tail": "",
    }


@pytest.mark.parametrize(
    ("program", "needle"),
    [
        ("raise ValueError('bad input')\n", "ValueError: bad input"),
        ("import sys\nprint(1)\nsys.exit(3)\n", "exit 3"),
        ("print(\n", "SyntaxError"),
    ],
)
def test_failing_program_is_a_crash(sandbox, program, needle):
    result = sandbox.run_program(program)
    assert result["verdict"] == records.FAIL_CRASH
    assert needle in result["detail"]
    assert result["stdout_last_line"] == ""


def test_a_dead_zygote_is_infra_error_not_a_verdict():
    box = Sandbox(Limits(timeout_s=TIMEOUT_S))
    os.killpg(box._zygote.pid, 9)
    box._zygote.wait()
    result = box.run_tests(ADD, ADD_TESTS)
    assert result["verdict"] == records.INFRA_ERROR
    assert "did not answer" in result["detail"]
    assert box.run_program("print(1)\n")["verdict"] == records.INFRA_ERROR
    box.close()


def test_a_broken_interpreter_fails_construction(tmp_path):
    fake = tmp_path / "python3"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(SandboxUnavailable, match="no sandbox isolation level"):
        Sandbox(Limits(timeout_s=TIMEOUT_S), python=str(fake), level=ISOLATION_PROCESS)


def test_a_level_below_the_required_one_is_refused():
    with pytest.raises(SandboxUnavailable, match="at or above 'namespaces'"):
        Sandbox(Limits(timeout_s=TIMEOUT_S), level=ISOLATION_PROCESS, require="namespaces")


def test_correct_solutions_stay_pass_under_concurrency(sandbox):
    jobs = [(ADD, ADD_TESTS)] * 8 + [
        ("while True:\n    pass\n", PASSING),
        ("x = bytearray(4 << 30)\n", PASSING),
        ("import os\nos._exit(0)\n", PASSING),
        ("def add(a, b):\n    return a - b\n", ADD_TESTS),
    ]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda job: sandbox.run_tests(*job), jobs))
    assert [r["verdict"] for r in results[:8]] == [records.PASS] * 8
    assert [r["verdict"] for r in results[8:]] == [
        records.FAIL_TIMEOUT,
        records.FAIL_MEMORY,
        records.FAIL_CRASH,
        records.FAIL_TESTS,
    ]


def test_hash_seed_is_fixed_for_deterministic_verdicts(sandbox):
    program = "print(hash('synthgen'))\n"
    first = sandbox.run_program(program)["stdout_last_line"]
    assert first == sandbox.run_program(program)["stdout_last_line"]


def test_interpreter_is_the_workers(sandbox):
    result = sandbox.run_program("import sys\nprint(sys.version_info[:2])\n")
    assert result["stdout_last_line"] == str(tuple(sys.version_info[:2]))
