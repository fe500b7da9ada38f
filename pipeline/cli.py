"""Command line: ``synthgen run | teacher-server | inspect | sandbox probe | check-code``.

Errors the user can fix (config, output location, teacher key) print one line and exit 2
(usage / config) or 1 (run failure); ``--debug`` shows the full traceback instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from pathlib import Path

EXIT_FAILURE, EXIT_USAGE = 1, 2
_LOCAL_RUNNERS = {"directrunner", "fnapirunner", "direct", "fnapi"}


def _quiet_imports() -> None:
    """Beam logs an apitools warning on import that means nothing for local runs."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        import apache_beam  # noqa: F401
    finally:
        root.setLevel(level)


def _runner(beam_args: list[str]) -> str | None:
    for i, arg in enumerate(beam_args):
        if arg.startswith("--runner="):
            return arg.split("=", 1)[1]
        if arg == "--runner" and i + 1 < len(beam_args):
            return beam_args[i + 1]
    return None


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    fatal = re.search(r"(?:TeacherFatalError|SandboxUnavailable): (.+)", text)
    if fatal:
        return fatal.group(1).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return f"{type(exc).__name__}: {lines[-1] if lines else ''}"


def cmd_run(args, beam_args: list[str]) -> int:
    from pipeline.config import ConfigError, load_config

    overrides = [*(args.set or []), *([f"teacher.cache_mode={args.cache}"] if args.cache else [])]
    try:
        cfg = load_config(args.config, overrides)
    except ConfigError as exc:
        print(f"synthgen: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    runner = _runner(beam_args)
    if runner is None:
        # The DirectRunner first tries to download the Prism runner; its in-process engine
        # (FnApiRunner) needs nothing from the network.
        beam_args = ["--runner=FnApiRunner", *beam_args]
    local = runner is None or runner.lower() in _LOCAL_RUNNERS
    if local and cfg.teacher.base_url != "builtin" and not os.environ.get(cfg.teacher.api_key_env):
        print(
            f"synthgen: config error: teacher.api_key_env: environment variable "
            f"{cfg.teacher.api_key_env} is not set",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if local:  # fail before any work (and any teacher spend) if the sandbox cannot run here
        from pipeline.sandbox import Limits, Sandbox, SandboxUnavailable

        try:
            Sandbox(Limits.from_config(cfg.verify), require=cfg.verify.require_isolation).close()
        except SandboxUnavailable as exc:
            print(f"synthgen: {exc}", file=sys.stderr)
            return EXIT_FAILURE
    if not getattr(args, "debug", False):
        # A failed bundle is logged by Beam with its traceback before the run raises; the
        # user gets the one-line summary below (--debug shows everything).
        logging.getLogger("apache_beam.runners.common").setLevel(logging.CRITICAL)
    from pipeline.run import OutputError, run

    try:
        manifest = run(cfg, args.output, beam_args, overwrite=args.overwrite)
    except OutputError as exc:
        print(f"synthgen: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as exc:
        if args.debug:
            raise
        print(f"synthgen: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - one line for the user; --debug for the traceback
        if args.debug:
            raise
        print(f"synthgen: run failed: {_one_line(exc)}", file=sys.stderr)
        return EXIT_FAILURE
    funnel = manifest["funnel"]
    print(
        f"synthgen: {funnel['kept']} kept, {funnel['rejected']} rejected of "
        f"{funnel['requested']} requested; {manifest['tokens']['data']} tokens; "
        f"{manifest['elapsed_s']:.1f} s -> {args.output}"
    )
    if not funnel["reconciled"]:
        print("synthgen: the funnel does not reconcile; see manifest.json", file=sys.stderr)
        return EXIT_FAILURE
    return 0


def cmd_teacher_server(args, _beam_args) -> int:
    from pipeline.teacher_server import serve_from_args

    try:
        return serve_from_args(args)
    except ValueError as exc:
        print(f"synthgen: {exc}", file=sys.stderr)
        return EXIT_USAGE


def cmd_inspect(args, _beam_args) -> int:
    from pipeline.inspect import inspect_output

    try:
        print(inspect_output(args.output, samples=args.samples))
    except FileNotFoundError as exc:
        print(f"synthgen: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0


def cmd_sandbox_probe(args, _beam_args) -> int:
    from pipeline.sandbox import Limits, Sandbox, SandboxUnavailable

    try:
        box = Sandbox(Limits())
    except SandboxUnavailable as exc:
        print(f"synthgen: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    facts = {
        **box.facts,
        "level": box.isolation_level,
        "interpreter": box.interpreter,
        "note": box.isolation_note,
    }
    box.close()
    if args.json:
        print(json.dumps(facts))
        return 0
    yes = {True: "yes", False: "no"}
    print(f"running as root:                          {yes[facts['root']]}")
    print(f"unshare (PID, net, IPC, UTS, mount ns):   {yes[facts['unshare']]}")
    print(f"bubblewrap (bwrap --unshare-all):         {yes[facts['bwrap']]}")
    print(f"levels allowed here, strongest first:     {', '.join(facts['levels'])}")
    print(f"level used (canary pair passed):          {facts['level']}")
    print(f"interpreter of the checks:                {facts['interpreter']}")
    if facts["note"]:
        print(f"tried first, failed the canary:           {facts['note']}")
    return 0


def cmd_check_code(args, _beam_args) -> int:
    from pipeline.sandbox import Limits, Sandbox, SandboxUnavailable

    try:
        solution = Path(args.solution).read_text(encoding="utf-8")
        tests = Path(args.tests).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"synthgen: cannot read {exc.filename or 'input'}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        limits = Limits(timeout_s=args.timeout, memory_mb=args.memory_mb)
        box = Sandbox(limits, require=args.require)
    except SandboxUnavailable as exc:
        print(f"synthgen: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    try:
        result = box.run_tests(solution, tests)
    finally:
        box.close()
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['verdict']}  level={result['isolation_level']} judge={result['judge_mode']} "
            f"tests={result['tests_passed']}/{result['tests_run']} {result['duration_s']:.3f} s"
        )
        if result["audit_flags"]:
            print(f"audit flags: {', '.join(result['audit_flags'])}")
        if result["detail"]:
            print(f"detail: {result['detail']}")
        if result["stderr_tail"]:
            print(f"stderr: {result['stderr_tail']}")
    return 0 if result["verdict"] == "PASS" else EXIT_FAILURE


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="synthgen", description=__doc__.splitlines()[0])
    top.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = top.add_subparsers(dest="command", required=True)

    run_p = sub.add_parser(
        "run",
        help="run the pipeline",
        description="Run the pipeline. Flags not listed here go to Beam's PipelineOptions "
        "(e.g. --runner, --project, --temp_location).",
    )
    run_p.add_argument("config", help="YAML config file")
    run_p.add_argument("--output", required=True, help="output directory (local, gs://, s3://)")
    run_p.add_argument(
        "--set", action="append", metavar="SECTION.KEY=VALUE", help="override a config value"
    )
    run_p.add_argument("--overwrite", action="store_true", help="replace an earlier run's outputs")
    run_p.add_argument(
        "--cache",
        choices=("on", "read-only", "refresh", "off"),
        help="teacher response cache mode (default: teacher.cache_mode, 'on')",
    )
    run_p.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks"
    )
    run_p.set_defaults(func=cmd_run)

    from pipeline.teacher_server import add_arguments

    server_p = sub.add_parser(
        "teacher-server",
        help="serve the built-in offline teacher (not a language model)",
        description="OpenAI-compatible server answering from a procedural problem bank with "
        "planted defects. It is not a language model.",
    )
    add_arguments(server_p)
    server_p.set_defaults(func=cmd_teacher_server)

    inspect_p = sub.add_parser(
        "inspect", help="print the funnel, shards and sample rows of an output"
    )
    inspect_p.add_argument("output")
    inspect_p.add_argument("--samples", type=int, default=3)
    inspect_p.set_defaults(func=cmd_inspect)

    sandbox_p = sub.add_parser("sandbox", help="the code sandbox on this machine")
    sandbox_sub = sandbox_p.add_subparsers(dest="sandbox_command", required=True)
    probe_p = sandbox_sub.add_parser(
        "probe", help="print what this machine allows and the isolation level it would use"
    )
    probe_p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    probe_p.set_defaults(func=cmd_sandbox_probe)

    check_p = sub.add_parser(
        "check-code",
        help="judge one solution against a tests file in the sandbox (exit 0 only for PASS)",
        description="TESTS imports from `solution`; it passes when importing it raises nothing "
        "and every top-level test_* function returns, with at least one assert executed.",
    )
    check_p.add_argument("solution", help="solution.py")
    check_p.add_argument("tests", help="tests file (from solution import ...)")
    check_p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    check_p.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")
    check_p.add_argument("--memory-mb", type=int, default=512, help="address space (default 512)")
    check_p.add_argument(
        "--require", choices=("process", "process+uid", "namespaces", "namespaces+uid"),
        help="refuse to run below this isolation level",
    )  # fmt: skip
    check_p.set_defaults(func=cmd_check_code)
    return top


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("synthgen").setLevel(logging.INFO)  # progress lines
    _quiet_imports()
    args, extra = parser().parse_known_args(argv)
    if extra and args.command != "run":
        print(f"synthgen: unrecognized arguments: {' '.join(extra)}", file=sys.stderr)
        return EXIT_USAGE
    return args.func(args, extra)


if __name__ == "__main__":
    sys.exit(main())
