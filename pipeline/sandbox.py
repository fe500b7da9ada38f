"""Sandbox: run untrusted, teacher-written Python in a separate, limited process.

``Sandbox(limits)`` is created in a DoFn's ``setup()`` and is safe to share between threads.

``run_tests(solution, tests)`` writes ``solution.py`` and ``test_solution.py`` into a fresh
temporary directory and runs the trusted harness (``pipeline/sandbox_harness.py``), which
imports the tests, calls every top-level ``test_*`` function they define and reports back on
a dedicated pipe, each report line prefixed by a random nonce that the parent sent on stdin
before any candidate code ran. Only a nonce-carrying report with at least one test, all of
them passed, and exit status 0 is a PASS. ``run_program(program)`` runs a math program and
returns its last stdout line; comparing it with an answer is ``pipeline.verify``'s job.

Both return a plain dict: ``verdict`` (one of the ``records`` verdicts), ``duration_s``,
``detail`` (first failing test and its exception, or a stderr tail; at most 500 characters),
``isolation_level``; plus ``tests_run``/``tests_passed`` or ``stdout_last_line``.

Every run: a fresh temp directory (removed afterwards), the interpreter started with
``-s -S -B`` and an environment holding only ``PYTHONHASHSEED=0`` (no API keys, no PATH;
``-I`` would ignore the hash seed and make set ordering, hence some verdicts,
nondeterministic; ``-S`` keeps site-packages out, which is also most of start-up time), cwd in
the temp dir, its own session, rlimits (address space, CPU, file size, open files, core, and
processes when running as another uid) applied by the harness before any candidate code, a
wall-clock timeout after which the whole process group is killed, and stdout/stderr capped
(exceeding the cap kills the run). Reading stops shortly after the main child exits, so a
daemon that keeps the pipes open cannot hang the run; the group is then killed.

Isolation levels (``Sandbox.isolation_level``, stamped on every result and output row):

``process``      separate process + rlimits + empty environment + temp dir + group kill.
``process+uid``  the same, and the child runs as an unprivileged uid (default 65534), so it
                 cannot write the worker's files or signal its processes, and RLIMIT_NPROC
                 binds. Chosen when the worker runs as root and a self-check passes. When
                 the worker's interpreter is unreadable by that uid (a virtualenv or pyenv
                 under /root), a system ``python3`` of the same version is tried; candidate
                 code needs the standard library only. ``isolation_note`` says what was used.

Construction runs that self-check (a trivial test file, ~30 ms per try). If even the plain
``process`` level cannot run it, ``SandboxUnavailable`` is raised: a broken sandbox must stop
the pipeline, not turn every sample into a failed one. Failures of the sandbox itself at run
time (cannot spawn, harness prologue failed, interpreter did not start) are ``INFRA_ERROR``,
never a candidate verdict. Stronger levels (namespaces, bubblewrap) would slot into
``_select_isolation`` and the child's argv.
"""

from __future__ import annotations

import ast
import math
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from pipeline import records

ISOLATION_PROCESS = "process"
ISOLATION_PROCESS_UID = "process+uid"
UNPRIVILEGED_UID = 65534  # "nobody" on Debian-like systems; any unused uid works
FALLBACK_PYTHONS = ("/usr/bin/python3", "/usr/local/bin/python3")

DETAIL_CHARS = 500
OPEN_FILES = 64
EXIT_GRACE_S = 0.1  # how long to keep reading after the main child exited
REPORT_CAP = 64 * 1024
_READ_CHUNK = 1 << 16
_POLL_TICK_MS = 20  # only without pidfd support
_REAP_TIMEOUT_S = 10.0

_HARNESS_FILE = Path(__file__).with_name("sandbox_harness.py")
_CHILD_FLAGS = ("-s", "-S", "-B", "-X", "utf8")
_CHILD_ENV = {"PYTHONHASHSEED": "0"}
_NONCE_HEX_BYTES = 16
_MEMORY_MARKERS = (b"MemoryError", b"Cannot allocate memory", b"out of memory")

_SELF_CHECK_TESTS = """\
def test_sandbox_runs():
    import fractions  # the standard library is readable

    with open("probe.txt", "w") as f:
        f.write("ok")
"""
_SELF_CHECK_UID_TESTS = """
def test_sandbox_uid():
    import os

    assert os.getuid() == {uid}
    try:
        open("guard/probe.txt", "w").close()
    except PermissionError:
        pass
    else:
        raise AssertionError("the sandbox user can write into the worker's directories")
"""


_SELF_CHECK_VERSION_TEST = """

def test_same_python_version():
    import sys

    assert tuple(sys.version_info[:2]) == {version}
"""


class SandboxUnavailable(RuntimeError):
    """The sandbox cannot run even a trivial test on this worker (fatal)."""


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


@dataclass
class _Run:
    """What one child did, before it is turned into a verdict."""

    duration_s: float = 0.0
    infra: str | None = None
    timed_out: bool = False
    output_exceeded: bool = False
    returncode: int | None = None
    stdout: bytes = b""
    stderr: bytes = b""
    reports: list[bytes] = field(default_factory=list)


class Sandbox:
    """Runs candidate code in a child process; see the module docstring for the guarantees."""

    def __init__(
        self,
        limits: Limits = Limits(),
        *,
        python: str | None = None,
        unprivileged_uid: int | None = UNPRIVILEGED_UID,
        tmp_dir: str | None = None,
    ):
        self.limits = limits
        self._python = python or sys.executable
        self._tmp_dir = tmp_dir
        self._harness = _HARNESS_FILE.read_text(encoding="utf-8")
        self._uid: int | None = None
        self.isolation_note = ""
        self.isolation_level = ISOLATION_PROCESS  # until the self-check says otherwise
        candidates = [self._python] if python else _interpreters()
        self.isolation_level = self._select_isolation(unprivileged_uid, candidates)
        _make_worker_undumpable()

    # ----------------------------------------------------------------- public API

    def run_tests(self, solution: str, tests: str) -> dict:
        run = self._run("tests", {"solution.py": solution, "test_solution.py": tests})
        verdict, detail, tests_run, tests_passed = self._tests_verdict(run)
        return {
            "verdict": verdict,
            "tests_run": tests_run,
            "tests_passed": tests_passed,
            "duration_s": round(run.duration_s, 4),
            "detail": detail[:DETAIL_CHARS],
            "isolation_level": self.isolation_level,
        }

    def run_program(self, program: str) -> dict:
        run = self._run("program", {"program.py": program})
        verdict, detail = self._common_verdict(run)
        if verdict is None:
            verdict, detail = self._exit_verdict(run)
        return {
            "verdict": verdict,
            "stdout_last_line": _last_line(run.stdout) if verdict == records.PASS else "",
            "duration_s": round(run.duration_s, 4),
            "detail": detail[:DETAIL_CHARS],
            "isolation_level": self.isolation_level,
        }

    def close(self) -> None:
        """Release resources (none held between runs at the current isolation levels)."""

    # ---------------------------------------------------------------- isolation

    def _select_isolation(self, unprivileged_uid: int | None, candidates: list[str]) -> str:
        """Self-check the strongest level first; the first interpreter that passes it wins."""
        if unprivileged_uid is not None and hasattr(os, "geteuid") and os.geteuid() == 0:
            notes = []
            for position, python in enumerate(candidates):
                self._python, self._uid = python, unprivileged_uid
                self.isolation_level = ISOLATION_PROCESS_UID
                tests = _SELF_CHECK_TESTS + _SELF_CHECK_UID_TESTS.format(uid=unprivileged_uid)
                if position > 0:  # a fallback interpreter must be the worker's Python version
                    tests += _SELF_CHECK_VERSION_TEST.format(version=tuple(sys.version_info[:2]))
                result = self.run_tests("", tests)
                if result["verdict"] == records.PASS:
                    self.isolation_note = "; ".join([*notes, f"{python} as uid {unprivileged_uid}"])
                    return ISOLATION_PROCESS_UID
                notes.append(
                    f"{python} as uid {unprivileged_uid}: {result['verdict']}: {result['detail']}"
                )
            self._python, self._uid = candidates[0], None
            self.isolation_level = ISOLATION_PROCESS
            self.isolation_note = "; ".join(notes)
        result = self.run_tests("", _SELF_CHECK_TESTS)
        if result["verdict"] != records.PASS:
            raise SandboxUnavailable(
                f"the sandbox cannot run a trivial test with {self._python}: "
                f"{result['verdict']}: {result['detail']}"
            )
        return ISOLATION_PROCESS

    def _limit_args(self) -> list[str]:
        lim = self.limits
        uid = self._uid if self._uid is not None else -1
        return [
            str(lim.memory_mb << 20),
            str(math.ceil(lim.timeout_s) + 1),
            str(lim.max_file_mb << 20),
            str(OPEN_FILES),
            # RLIMIT_NPROC counts the uid's processes and does not bind root.
            str(lim.max_processes if self._uid is not None else -1),
            str(uid),
            str(uid),
        ]

    # -------------------------------------------------------------- one child

    def _run(self, mode: str, files: dict[str, str]) -> _Run:
        start = time.monotonic()
        try:
            tmp = tempfile.mkdtemp(prefix="synthgen-sandbox-", dir=self._tmp_dir)
        except OSError as exc:
            return _Run(duration_s=time.monotonic() - start, infra=f"temp dir: {exc}")
        try:
            for name, text in files.items():
                path = os.path.join(tmp, name)
                with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
                    f.write(text)
                os.chmod(path, 0o644)
            if self._uid is not None:
                os.mkdir(os.path.join(tmp, "guard"), 0o755)  # stays the worker's
                os.chown(tmp, self._uid, self._uid)
            return self._execute(mode, tmp, start)
        except OSError as exc:
            return _Run(duration_s=time.monotonic() - start, infra=f"{type(exc).__name__}: {exc}")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _execute(self, mode: str, cwd: str, start: float) -> _Run:
        nonce = secrets.token_hex(_NONCE_HEX_BYTES).encode()
        report_r, report_w = os.pipe()
        argv = [self._python, *_CHILD_FLAGS, "-c", self._harness, mode, str(report_w)]
        argv += [str(len(nonce)), *self._limit_args()]
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(report_w,),
                env=dict(_CHILD_ENV),
                cwd=cwd,
                start_new_session=True,
            )
        except OSError as exc:
            os.close(report_r)
            return _Run(duration_s=time.monotonic() - start, infra=f"cannot start: {exc}")
        finally:
            os.close(report_w)
        run = _Run()
        try:
            try:
                os.write(proc.stdin.fileno(), nonce)
            except BrokenPipeError:
                pass
            proc.stdin.close()
            self._collect(proc, report_r, start, run)
        finally:
            _kill_group(proc)
            try:
                run.returncode = proc.wait(timeout=_REAP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                run.infra = f"child {proc.pid} could not be reaped"
            for stream in (proc.stdout, proc.stderr):
                stream.close()
            os.close(report_r)
        run.duration_s = time.monotonic() - start
        prefix = nonce + b" "
        run.reports = [line[len(prefix) :] for line in run.reports if line.startswith(prefix)]
        return run

    def _collect(self, proc: subprocess.Popen, report_r: int, start: float, run: _Run) -> None:
        """Read the child's pipes until it exits (plus a short grace) or the deadline."""
        out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
        bufs = {out_fd: bytearray(), err_fd: bytearray(), report_r: bytearray()}
        output_cap = self.limits.max_output_kb * 1024
        caps = {out_fd: output_cap, err_fd: output_cap, report_r: REPORT_CAP}
        poller = select.poll()
        for fd in bufs:
            poller.register(fd, select.POLLIN)
        open_fds = set(bufs)
        pidfd = _pidfd_open(proc.pid)
        if pidfd is not None:
            poller.register(pidfd, select.POLLIN)
        deadline = start + self.limits.timeout_s
        exited_at = None
        try:
            while True:
                now = time.monotonic()
                if exited_at is None and pidfd is None and _has_exited(proc.pid):
                    exited_at = now
                if exited_at is not None:
                    if not open_fds or now >= exited_at + EXIT_GRACE_S:
                        break
                    until = exited_at + EXIT_GRACE_S
                elif now >= deadline:
                    run.timed_out = True
                    break
                else:
                    until = deadline
                wait_ms = max(0, math.ceil((until - now) * 1000))
                if pidfd is None:
                    wait_ms = min(wait_ms, _POLL_TICK_MS)
                for fd, _event in poller.poll(wait_ms):
                    if fd == pidfd:
                        exited_at = time.monotonic()
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
                    if len(chunk) > room and fd != report_r:
                        run.output_exceeded = True
                if run.output_exceeded:
                    break
        finally:
            if pidfd is not None:
                os.close(pidfd)
        run.stdout, run.stderr = bytes(bufs[out_fd]), bytes(bufs[err_fd])
        run.reports = bytes(bufs[report_r]).split(b"\n")

    # ---------------------------------------------------------------- verdicts

    def _common_verdict(self, run: _Run) -> tuple[str | None, str]:
        """Verdicts that do not depend on the mode; (None, "") when the mode decides."""
        if run.infra:
            return records.INFRA_ERROR, run.infra
        for payload in run.reports:
            infra = _loads(payload).get("infra") if payload.startswith(b"{") else None
            if infra:
                return records.INFRA_ERROR, f"harness: {infra}"
        if b"ready" not in run.reports:
            if run.timed_out:
                detail = f"the sandbox did not start in {self.limits.timeout_s} s"
                return records.INFRA_ERROR, detail
            return records.INFRA_ERROR, (
                f"the sandbox exited before running the candidate (exit {run.returncode}): "
                + _tail(run.stderr)
            )
        if run.timed_out:
            return records.FAIL_TIMEOUT, f"timed out after {self.limits.timeout_s} s"
        if run.output_exceeded:
            return records.FAIL_CRASH, f"output exceeded {self.limits.max_output_kb} KB"
        if run.returncode == -signal.SIGXCPU:
            return records.FAIL_TIMEOUT, "CPU time limit exceeded"
        return None, ""

    def _exit_verdict(self, run: _Run) -> tuple[str, str]:
        """Verdict from the exit status alone (no valid test report)."""
        rc = run.returncode
        if rc == 0:
            return records.PASS, ""
        if any(marker in run.stderr[-2000:] for marker in _MEMORY_MARKERS):
            return records.FAIL_MEMORY, _tail(run.stderr)
        if rc is not None and rc < 0:
            name = signal.Signals(-rc).name if -rc in signal.valid_signals() else str(-rc)
            return records.FAIL_CRASH, f"killed by {name}: {_tail(run.stderr)}".rstrip(": ")
        return records.FAIL_CRASH, f"exit {rc}: {_tail(run.stderr)}".rstrip(": ")

    def _tests_verdict(self, run: _Run) -> tuple[str, str, int, int]:
        verdict, detail = self._common_verdict(run)
        if verdict is not None:
            return verdict, detail, 0, 0
        report = None
        for payload in run.reports:
            if payload.startswith(b"{"):
                report = _loads(payload)
        if run.returncode != 0 or not _valid_report(report):
            verdict, detail = self._exit_verdict(run)
            if verdict == records.PASS:  # exit 0 without a report: an early exit
                detail = f"exit 0 before the harness reported: {_tail(run.stderr)}"
                return records.FAIL_NO_REPORT, detail.rstrip(": "), 0, 0
            return verdict, detail, 0, 0
        ran, passed, error = report["run"], report["passed"], report["error"]
        if report["memory"]:
            return records.FAIL_MEMORY, error or "MemoryError", ran, passed
        if ran == 0:
            return records.FAIL_TESTS, error or "no tests: no top-level test_* function", 0, 0
        if passed == ran and error is None:
            return records.PASS, "", ran, passed
        return records.FAIL_TESTS, f"{ran - passed}/{ran} failed; {error}", ran, passed


def _valid_report(report) -> bool:
    return (
        isinstance(report, dict)
        and isinstance(report.get("run"), int)
        and isinstance(report.get("passed"), int)
        and (report.get("error") is None or isinstance(report.get("error"), str))
        and isinstance(report.get("memory"), bool)
        and 0 <= report["passed"] <= report["run"]
    )


def _loads(payload: bytes) -> dict:
    """The harness's report: ``repr()`` of a dict of plain literals (json costs start-up)."""
    try:
        value = ast.literal_eval(payload.decode("utf-8", errors="replace"))
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def _tail(data: bytes, chars: int = DETAIL_CHARS - 60) -> str:
    text = data[-4 * chars :].decode("utf-8", errors="replace").strip()
    return text[-chars:]


def _last_line(data: bytes) -> str:
    for line in reversed(data.decode("utf-8", errors="replace").splitlines()):
        if line.strip():
            return line.strip()[:DETAIL_CHARS]
    return ""


def _make_worker_undumpable() -> None:
    """PR_SET_DUMPABLE=0 on the worker: its /proc/<pid>/environ and memory become root-owned,
    so a child running as the worker's own (non-root) uid cannot read the API key there."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_dumpable = 4
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_dumpable, 0, 0, 0, 0)


def _interpreters() -> list[str]:
    """The worker's interpreter, then system ones of the same version (checked by the
    self-check): a virtualenv or pyenv under /root is unreadable by an unprivileged uid."""
    found, seen = [sys.executable], {os.path.realpath(sys.executable)}
    for path in FALLBACK_PYTHONS:
        real = os.path.realpath(path)
        if real not in seen and os.access(real, os.X_OK):
            found.append(path)
            seen.add(real)
    return found


def _pidfd_open(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _has_exited(pid: int) -> bool:
    """True once ``pid`` has exited; it is not reaped, so its pid and group stay ours."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _kill_group(proc: subprocess.Popen) -> None:
    # The leader is not reaped yet, so neither its pid nor its group id can have been reused.
    for kill, target in ((os.killpg, proc.pid), (os.kill, proc.pid)):
        try:
            kill(target, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
