"""Command line: ``synthgen run | teacher-server | inspect``.

Errors the user can fix (config, output location, teacher key) print one line and exit 2
(usage / config) or 1 (run failure); ``--debug`` shows the full traceback instead.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys

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
    fatal = re.search(r"TeacherFatalError: (.+)", text)
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
