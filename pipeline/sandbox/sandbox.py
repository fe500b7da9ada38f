"""Sandbox: run untrusted, teacher-written Python so that it can neither escape nor fake a pass.

``Sandbox(limits)`` is created in a DoFn's ``setup()`` and is safe to share between threads.
``run_tests(solution, tests)`` judges a solution against teacher-written tests (a tests file
imports from ``solution`` and passes when importing it raises nothing and every top-level
``test_*`` function returns without raising, with at least one ``assert`` executed);
``run_program(program)`` runs a math program and returns its last stdout line (comparing it
with an answer is ``pipeline.stages.verify``'s job). Both return a plain dict: ``verdict``,
``duration_s``, ``detail`` (first failing test, or a stderr tail; at most 500 characters),
``isolation_level``, ``judge_mode``, ``audit_flags``; plus ``tests_run``/``tests_passed`` or
``stdout_last_line``.

How (the helper processes are in ``pipeline/sandbox/harness.py``): at construction the sandbox
probes what this machine allows, starts a *zygote* (a pre-started, pre-imported Python with an
empty environment) at the strongest level, and runs a canary pair there (a known-good sample
must PASS, a known-bad one must FAIL_TESTS). Each check is one fork of the zygote, so a check
costs a few forks, not an interpreter start-up. Isolation levels, weakest first:

``process``         separate processes, new sessions, rlimits (address space, CPU, file size,
                    open files, no core dumps), no sockets (seccomp), empty environment, fresh
                    directory, the process groups killed at the end, and every leftover
                    descendant (the check's runner is a child subreaper, so a ``setsid``
                    daemon is re-parented to it) killed.
``process+uid``     plus two unprivileged uids of its own per concurrent check (solution and
                    tests), a sweep that kills every process of those uids at the end,
                    ``RLIMIT_NPROC``, a tests directory the solution cannot read and, where a
                    mount namespace is allowed, a read-only filesystem with a private tmpfs
                    on /tmp, /var/tmp, /dev/shm per check. Needs root.
``namespaces``      ``process`` inside bubblewrap (``bwrap --unshare-all``: no network, own PID
                    space, read-only root, private /tmp) for workers that are not root.
``namespaces+uid``  ``process+uid`` inside ``unshare``'s own PID, network, IPC, UTS and mount
                    namespaces (root): the strongest.

Judging (``judge_mode``): ``pipe`` runs the solution in a process of its own and lets the
tests call it across a pipe with plain data only; ``in_process`` (the fallback when a test
needs the candidate's own objects: generators, classes, mutated arguments) imports the solution
into the tests process under a guard: reaching for frames, ``gc``, ``ctypes`` or code objects
ends the check as ``SUSPICIOUS``, asserts compare on plain data, and a PASS by code carrying
a forgery red flag is ``SUSPICIOUS`` too. In both modes at least one ``assert`` must run.
``audit_flags`` are static red flags of the solution (``os._exit``, frame walking, ``gc``,
``ctypes``, ``/proc/``, ``atexit``, ``signal``, ``builtins`` patching, sockets, ...).

Failures of the sandbox itself are ``INFRA_ERROR``, never a verdict on the candidate; if the
canary pair fails, or no level at least ``require`` works, construction raises
``SandboxUnavailable`` and the run stops. The worker itself is made undumpable
(``PR_SET_DUMPABLE=0``: its ``/proc/<pid>/environ`` and memory are unreadable to others).
"""

from __future__ import annotations

import ast
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from pipeline import records
from pipeline.sandbox.harness import SUSPICIOUS_EXIT, recv_msg, send_msg

ISOLATION_PROCESS = "process"
ISOLATION_PROCESS_UID = "process+uid"
ISOLATION_NAMESPACES = "namespaces"
ISOLATION_NAMESPACES_UID = "namespaces+uid"
LEVELS = (ISOLATION_PROCESS, ISOLATION_PROCESS_UID, ISOLATION_NAMESPACES, ISOLATION_NAMESPACES_UID)
JUDGE_PIPE, JUDGE_IN_PROCESS = "pipe", "in_process"

DETAIL_CHARS = 500
OPEN_FILES = 64
MAX_SLOTS = 512  # concurrent checks per worker process (two uids each)
UID_BASE = 1_000_000  # check uids start here (unused by real users); see check_uid_range
_UID_BLOCKS = 2_000_000
_HARNESS_FILE = Path(__file__).with_name("harness.py")
_CHILD_FLAGS = ("-s", "-S", "-B", "-X", "utf8")
_CHILD_ENV = {"PYTHONHASHSEED": "0"}  # -I would randomise set order, hence some verdicts
_UNSHARE = ("--pid", "--net", "--ipc", "--uts", "--mount", "--fork", "--mount-proc")
_BWRAP = (
    "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
    "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
    "--tmpfs", "/tmp", "--tmpfs", "/var/tmp",
)  # fmt: skip
_MEMORY_MARKERS = (b"MemoryError", b"Cannot allocate memory", b"out of memory")
_SETUP_MARKER = b"synthgen-sandbox-setup:"
_REPLY_MARGIN_S = 15.0

# The good canary also proves that a check can import the standard library (an interpreter
# under /root is unreadable to the check's uids) and runs the worker's Python version.
CANARY_SOLUTION = "import colorsys\n\n\ndef add(a, b):\n    return a + b\n"  # not pre-imported
CANARY_BAD_SOLUTION = "def add(a, b):\n    return a - b\n"
CANARY_TESTS = f"""\
import sys

from solution import add


def test_add():
    assert add(2, 3) == 5


def test_python_version():
    assert tuple(sys.version_info[:2]) == {tuple(sys.version_info[:2])}
"""
FALLBACK_PYTHONS = ("/usr/bin/python3", "/usr/local/bin/python3")

RED_FLAGS = {
    "os_exit": r"\b_exit\s*\(",
    "frame_walk": r"\b(_getframe|f_back|f_globals|f_locals|tb_frame|inspect|settrace)\b",
    "gc": r"\bgc\s*\.",
    "ctypes": r"\bctypes\b",
    "proc_fs": r"/proc\b",
    "atexit": r"\batexit\b",
    "signal": r"\bsignal\b",
    "builtins": r"\b(__builtins__|builtins)\b",
    "socket": r"\b(socket|urllib|http\.client|requests)\b",
    "subprocess": r"\b(subprocess|os\s*\.\s*(system|popen|fork|kill|exec\w*|spawn\w*))\b",
    "sys_modules": r"\bsys\s*\.\s*modules\b",
    "eq_override": r"def\s+__(eq|ne|bool|hash)__",
    "exit": r"\b(sys\s*\.\s*exit|exit|quit)\s*\(",
}
# Flags of code that could forge a verdict judged in-process.
FORGERY_FLAGS = frozenset(RED_FLAGS) - {"socket", "subprocess"}
_RED_FLAG_RES = {name: re.compile(pattern) for name, pattern in RED_FLAGS.items()}


class SandboxUnavailable(RuntimeError):
    """No isolation level (at least the required one) passes the canary on this worker."""


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 5.0
    memory_mb: int = 512
    max_output_kb: int = 256
    max_file_mb: int = 16
    max_processes: int = 16

    @classmethod
    def from_config(cls, verify_cfg) -> Limits:
        """Limits from a ``pipeline.config.VerifyConfig``."""
        return cls(
            timeout_s=verify_cfg.timeout_s,
            memory_mb=verify_cfg.memory_mb,
            max_output_kb=verify_cfg.max_output_kb,
            max_file_mb=verify_cfg.max_file_mb,
            max_processes=verify_cfg.max_processes,
        )


def audit_flags(source: str) -> list[str]:
    """Static red flags of candidate code (recorded, never a verdict on their own)."""
    return sorted(name for name, pattern in _RED_FLAG_RES.items() if pattern.search(source))


# ------------------------------------------------------------------ probing


def _works(argv: list[str]) -> bool:
    try:
        done = subprocess.run(argv, capture_output=True, timeout=10, env={}, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def probe() -> dict:
    """What this machine allows, and the levels that follow, strongest first."""
    root = os.geteuid() == 0
    unshare = shutil.which("unshare")
    bwrap = shutil.which("bwrap")
    facts = {
        "root": root,
        "unshare": bool(unshare and root and _works([unshare, *_UNSHARE, "true"])),
        "bwrap": bool(bwrap and _works([bwrap, *_BWRAP, "true"])),
    }
    levels = []
    if facts["unshare"]:
        levels.append(ISOLATION_NAMESPACES_UID)
    if facts["bwrap"]:
        levels.append(ISOLATION_NAMESPACES)
    if root:
        levels.append(ISOLATION_PROCESS_UID)
    levels.append(ISOLATION_PROCESS)
    facts["levels"] = levels
    return facts


def level_rank(level: str) -> int:
    return LEVELS.index(level)


# ------------------------------------------------------------------ uids per check


class _Slots:
    """Process-wide: every concurrent check gets two uids no other check of this host uses
    (the pid makes them unique between worker processes)."""

    def __init__(self):
        self._free = list(range(MAX_SLOTS))
        self._lock = threading.Condition()

    def take(self) -> int:
        with self._lock:
            while not self._free:
                self._lock.wait()
            return self._free.pop()

    def give(self, slot: int) -> None:
        with self._lock:
            self._free.append(slot)
            self._lock.notify()

    @staticmethod
    def uids(slot: int) -> tuple[int, int]:
        base = check_uid_range()[0] + 2 * slot
        return base, base + 1


_UID_SALT = secrets.randbelow(_UID_BLOCKS)


def check_uid_range() -> range:
    """The uids this worker process gives its checks: a block chosen by pid and a random salt,
    so workers in sibling PID namespaces (containers, with equal pids) do not share uids."""
    block = (os.getpid() * 7919 + _UID_SALT) % _UID_BLOCKS
    base = UID_BASE + block * 2 * MAX_SLOTS
    return range(base, base + 2 * MAX_SLOTS)


_SLOTS = _Slots()


# ------------------------------------------------------------------ the sandbox


class Sandbox:
    """See the module docstring. ``level`` forces one level; ``require`` is the weakest level
    accepted (``verify.require_isolation``)."""

    def __init__(
        self,
        limits: Limits = Limits(),
        *,
        level: str | None = None,
        require: str | None = None,
        python: str | None = None,
        tmp_dir: str | None = None,
    ):
        self.limits = limits
        self._tmp_dir = tmp_dir or tempfile.gettempdir()
        self._lock = threading.Lock()
        self._zygote: subprocess.Popen | None = None
        self._control: socket.socket | None = None
        self.facts = probe()
        candidates = [level] if level else self.facts["levels"]
        if require:
            candidates = [c for c in candidates if level_rank(c) >= level_rank(require)]
        notes = []
        for candidate, interpreter in (
            (c, i) for c in candidates for i in ([python] if python else _interpreters())
        ):
            self.isolation_level, self.interpreter = candidate, interpreter
            problem = self._start() or self._canary()
            if not problem:
                self.isolation_note = "; ".join(notes)  # what was tried before, and why not
                break
            notes.append(f"{candidate} with {interpreter}: {problem}")
            self.close()
        else:
            wanted = f" at or above {require!r}" if require else ""
            raise SandboxUnavailable(
                f"no sandbox isolation level{wanted} works on this worker "
                f"(allowed here: {', '.join(self.facts['levels'])}): {'; '.join(notes) or '-'}"
            )
        _make_worker_undumpable()

    # ----------------------------------------------------------------- public API

    def run_tests(self, solution: str, tests: str) -> dict:
        flags = audit_flags(solution)
        reply, mode = self._check(JUDGE_PIPE, solution, tests), JUDGE_PIPE
        if reply.get("fallback"):
            reply, mode = self._check(JUDGE_IN_PROCESS, solution, tests), JUDGE_IN_PROCESS
        verdict, detail, ran, passed = tests_verdict(reply, self.limits)
        if verdict == records.PASS and mode == JUDGE_IN_PROCESS and FORGERY_FLAGS & set(flags):
            verdict = records.SUSPICIOUS
            detail = "passed in-process, by code with red flags: " + ", ".join(flags)
        return {
            "verdict": verdict,
            "tests_run": ran,
            "tests_passed": passed,
            "duration_s": round(reply.get("duration_s", 0.0), 4),
            "detail": detail[:DETAIL_CHARS],
            "isolation_level": self.isolation_level,
            "judge_mode": mode,
            "audit_flags": flags,
            "stderr_tail": _tail(reply.get("stderr", b""), 300),
        }

    def run_program(self, program: str) -> dict:
        reply = self._check("program", program, "")
        verdict, detail = program_verdict(reply, self.limits)
        return {
            "verdict": verdict,
            "stdout_last_line": _last_line(reply.get("stdout", b"")) if verdict == "PASS" else "",
            "duration_s": round(reply.get("duration_s", 0.0), 4),
            "detail": detail[:DETAIL_CHARS],
            "isolation_level": self.isolation_level,
            "judge_mode": "program",
            "audit_flags": audit_flags(program),
            "stderr_tail": _tail(reply.get("stderr", b""), 300),
        }

    def close(self) -> None:
        """Stop the zygote (its namespace, and every check still in it, goes with it)."""
        if self._control is not None:
            self._control.close()
            self._control = None
        if self._zygote is not None:
            try:
                self._zygote.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._zygote.kill()
                self._zygote.wait()
            self._zygote = None

    # ---------------------------------------------------------------- zygote

    def _uses_uids(self) -> bool:
        return self.isolation_level.endswith("+uid")

    def _start(self) -> str:
        """Start the zygote at ``self.isolation_level``; '' or what went wrong."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        harness = _HARNESS_FILE.read_text(encoding="utf-8")
        argv = [self.interpreter, *_CHILD_FLAGS, "-c", harness, str(theirs.fileno())]
        if self.isolation_level == ISOLATION_NAMESPACES_UID:
            argv = [shutil.which("unshare") or "unshare", *_UNSHARE, *argv]
        elif self.isolation_level == ISOLATION_NAMESPACES:
            argv = [shutil.which("bwrap") or "bwrap", *_BWRAP, *argv]
        try:
            self._zygote = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                pass_fds=(theirs.fileno(),),
                env=dict(_CHILD_ENV),
                start_new_session=True,
            )
        except OSError as exc:
            return f"cannot start: {exc}"
        finally:
            theirs.close()
        self._control = ours
        ours.settimeout(30)
        try:
            hello = recv_msg(ours)
        except (OSError, EOFError, ValueError) as exc:
            ours.close()  # it may be hung rather than dead: stderr must reach EOF
            self._control = None
            try:
                os.killpg(self._zygote.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            err = self._zygote.stderr.read(2000).decode(errors="replace").strip()
            return f"the zygote did not start: {err or exc}"
        ours.settimeout(None)
        self._zygote.stderr.close()
        if not hello.get("ready"):
            return "the zygote did not report ready"
        return ""

    def _canary(self) -> str:
        good = self.run_tests(CANARY_SOLUTION, CANARY_TESTS)
        if good["verdict"] != records.PASS:
            return f"canary: a correct solution got {good['verdict']}: {good['detail']}"
        bad = self.run_tests(CANARY_BAD_SOLUTION, CANARY_TESTS)
        if bad["verdict"] != records.FAIL_TESTS:
            return f"canary: a wrong solution got {bad['verdict']}: {bad['detail']}"
        return ""

    def _request(self, mode: str, solution: str, tests: str, uids: tuple[int, int]) -> dict:
        lim = self.limits
        sol_uid, tests_uid = uids
        if mode == "program":
            files = [("sol", "program.py", solution)]
        elif mode == JUDGE_PIPE:
            files = [("sol", "solution.py", solution), ("tests", "test_solution.py", tests)]
        else:
            files = [("tests", "solution.py", solution), ("tests", "test_solution.py", tests)]
        dirs = {"sol": sol_uid, "tests": tests_uid}
        return {
            "mode": mode,
            "files": files,
            "dirs": dirs if mode == JUDGE_PIPE else {k: dirs[k] for k, *_ in files},
            "limits": [
                lim.memory_mb << 20,
                int(lim.timeout_s) + 1,
                lim.max_file_mb << 20,
                OPEN_FILES,
                lim.max_processes if sol_uid >= 0 else -1,  # NPROC does not bind root
            ],
            "timeout_s": lim.timeout_s,
            "output_cap": lim.max_output_kb * 1024,
            "nonce": secrets.token_hex(16).encode(),
            "private_tmp": sol_uid >= 0,
            "tmp_mb": max(16, 4 * lim.max_file_mb),
            "tmp_root": self._tmp_dir,
        }

    def _check(self, mode: str, solution: str, tests: str) -> dict:
        slot = _SLOTS.take() if self._uses_uids() else None
        uids = _Slots.uids(slot) if slot is not None else (-1, -1)
        request = self._request(mode, solution, tests, uids)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with self._lock:
                if self._control is None:
                    return {"infra": "the sandbox is closed"}
                socket.send_fds(self._control, [b"c"], [theirs.fileno()])
            theirs.close()
            ours.settimeout(self.limits.timeout_s + _REPLY_MARGIN_S)
            send_msg(ours, request)
            reply = recv_msg(ours)
        except (OSError, EOFError, ValueError) as exc:
            return {"infra": f"the sandbox did not answer: {type(exc).__name__}: {exc}"}
        finally:
            theirs.close()
            ours.close()
            if slot is not None:
                _SLOTS.give(slot)
        reply["fallback"] = None
        report = _report(reply.get("report", b""), request["nonce"])
        if report is not None:
            reply["fallback"] = report.get("fallback")
        reply["parsed_report"] = report
        reply["forged_report"] = bool(reply.get("report")) and report is None
        return reply


# ------------------------------------------------------------------ verdicts (pure)


def _report(data: bytes, nonce: bytes) -> dict | None:
    prefix = nonce + b" "
    if not data.startswith(prefix) or b"\n" in data:
        return None
    try:
        value = ast.literal_eval(data[len(prefix) :].decode("utf-8", errors="replace"))
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    ok = (
        isinstance(value, dict)
        and all(isinstance(value.get(k), int) for k in ("run", "passed", "asserts"))
        and (value.get("error") is None or isinstance(value.get("error"), str))
        and isinstance(value.get("memory"), bool)
        and 0 <= value["passed"] <= value["run"]
    )
    return value if ok else None


def _signal_name(status: int) -> str:
    return signal.Signals(-status).name if -status in signal.valid_signals() else str(-status)


def _common_verdict(reply: dict, limits: Limits) -> tuple[str | None, str]:
    """Verdicts that do not depend on the mode; (None, "") when the mode decides."""
    if reply.get("infra"):
        return records.INFRA_ERROR, reply["infra"]
    stderr = reply["stderr"]
    if _SETUP_MARKER in stderr and 125 in reply["statuses"]:
        line = stderr[stderr.index(_SETUP_MARKER) :].split(b"\n")[0]
        return records.INFRA_ERROR, line.decode(errors="replace")
    if reply["timed_out"]:
        return records.FAIL_TIMEOUT, f"timed out after {limits.timeout_s} s"
    if reply["output_exceeded"]:
        return records.FAIL_CRASH, f"output exceeded {limits.max_output_kb} KB"
    if -signal.SIGXCPU in reply["statuses"]:
        return records.FAIL_TIMEOUT, "CPU time limit exceeded"
    return None, ""


def _exit_verdict(status: int | None, stderr: bytes) -> tuple[str, str]:
    if status == 0:
        return records.PASS, ""
    if any(marker in stderr[-2000:] for marker in _MEMORY_MARKERS):
        return records.FAIL_MEMORY, _tail(stderr)
    if status is not None and status < 0:
        return records.FAIL_CRASH, f"killed by {_signal_name(status)}: {_tail(stderr)}".rstrip(": ")
    return records.FAIL_CRASH, f"exit {status}: {_tail(stderr)}".rstrip(": ")


def program_verdict(reply: dict, limits: Limits) -> tuple[str, str]:
    verdict, detail = _common_verdict(reply, limits)
    if verdict is None:
        verdict, detail = _exit_verdict(reply["statuses"][0], reply["stderr"])
    return verdict, detail


def tests_verdict(reply: dict, limits: Limits) -> tuple[str, str, int, int]:
    """(verdict, detail, tests run, tests passed) of a tests check."""
    verdict, detail = _common_verdict(reply, limits)
    if verdict is not None:
        return verdict, detail, 0, 0
    if reply["forged_report"]:
        return records.SUSPICIOUS, "a report without the nonce reached the judge", 0, 0
    report, statuses = reply["parsed_report"], reply["statuses"]
    if statuses[0] == SUSPICIOUS_EXIT and report is None:
        detail = "judged in-process, the candidate reached for the judge's frames or memory"
        return records.SUSPICIOUS, detail, 0, 0
    if report is None:
        verdict, detail = _exit_verdict(statuses[0], reply["stderr"])
        if verdict == records.PASS:  # exit 0 without a report: an early exit
            detail = f"exit 0 before the judge reported: {_tail(reply['stderr'])}"
            return records.FAIL_NO_REPORT, detail.rstrip(": "), 0, 0
        return verdict, detail, 0, 0
    ran, passed, error = report["run"], report["passed"], report["error"]
    if report["memory"]:
        return records.FAIL_MEMORY, error or "MemoryError", ran, passed
    if error and "_SolutionGone" in error:
        sol = statuses[1] if len(statuses) > 1 else None
        verdict, why = _exit_verdict(sol, reply["stderr"])
        verdict = records.FAIL_CRASH if verdict == records.PASS else verdict
        return verdict, f"the solution process died: {why or error}", ran, passed
    if ran == 0:
        return records.FAIL_TESTS, error or "no tests: no top-level test_* function", 0, 0
    if passed == ran and error is None:
        if report["asserts"] == 0:
            return records.FAIL_TESTS, "the tests executed no assert", ran, passed
        return records.PASS, "", ran, passed
    return records.FAIL_TESTS, f"{ran - passed}/{ran} failed; {error}", ran, passed


def _tail(data: bytes, chars: int = DETAIL_CHARS - 60) -> str:
    text = data[-4 * chars :].decode("utf-8", errors="replace").strip()
    return text[-chars:]


def _last_line(data: bytes) -> str:
    for line in reversed(data.decode("utf-8", errors="replace").splitlines()):
        if line.strip():
            return line.strip()[:DETAIL_CHARS]
    return ""


def _interpreters() -> list[str]:
    """The worker's interpreter, then system ones (the canary checks the version): a
    virtualenv or pyenv under /root is unreadable by the check's uids."""
    found, seen = [sys.executable], {os.path.realpath(sys.executable)}
    for path in FALLBACK_PYTHONS:
        real = os.path.realpath(path)
        if real not in seen and os.access(real, os.X_OK):
            found.append(path)
            seen.add(real)
    return found


def _make_worker_undumpable() -> None:
    """PR_SET_DUMPABLE=0 on the worker: its /proc/<pid>/environ and memory become root-owned,
    so a child running as the worker's own (non-root) uid cannot read the API key there."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_dumpable = 4
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_dumpable, 0, 0, 0, 0)
