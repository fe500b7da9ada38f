"""Command line: ``synthgen run|dedup|decontam|teacher-server|inspect|report|sandbox probe|
check-code``.

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
_BEAM_COMMANDS = {"run", "dedup", "decontam"}  # extra flags go to Beam's PipelineOptions


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


def _beam_args(args, beam_args: list[str]) -> list[str]:
    """Beam's flags with the default runner, and Beam's own logging of a failed bundle (with
    its traceback) silenced: the user gets a one-line summary; --debug shows everything."""
    if not getattr(args, "debug", False):
        logging.getLogger("apache_beam.runners.common").setLevel(logging.CRITICAL)
    if _runner(beam_args) is None:
        # The DirectRunner first tries to download the Prism runner; its in-process engine
        # (FnApiRunner) needs nothing from the network.
        return ["--runner=FnApiRunner", *beam_args]
    return beam_args


_FATAL = ("TeacherFatalError", "SandboxUnavailable")


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    fatal = re.search(rf"(?:{'|'.join(_FATAL)}): (.+)", text)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if fatal:
        line = fatal.group(1).strip()
    elif type(exc).__name__ in _FATAL:  # re-raised as it was by an in-process runner
        line = lines[0] if lines else ""
    else:
        line = f"{type(exc).__name__}: {lines[-1] if lines else ''}"
    return re.sub(r" \[while running '[^']*'\]$", "", line)


def cmd_run(args, beam_args: list[str]) -> int:
    from pipeline.config import ConfigError, load_config

    overrides = [*(args.set or []), *([f"teacher.cache_mode={args.cache}"] if args.cache else [])]
    try:
        cfg = load_config(args.config, overrides)
    except ConfigError as exc:
        print(f"synthgen: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    runner = _runner(beam_args)
    beam_args = _beam_args(args, beam_args)
    local = runner is None or runner.lower() in _LOCAL_RUNNERS
    if local and cfg.teacher.base_url != "builtin" and not os.environ.get(cfg.teacher.api_key_env):
        print(
            f"synthgen: config error: teacher.api_key_env: environment variable "
            f"{cfg.teacher.api_key_env} is not set",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if local:  # fail before any work (and any teacher spend) if the sandbox cannot run here
        from pipeline.sandbox.sandbox import Limits, Sandbox, SandboxUnavailable

        try:
            Sandbox(Limits.from_config(cfg.verify), require=cfg.verify.require_isolation).close()
        except SandboxUnavailable as exc:
            print(f"synthgen: {exc}", file=sys.stderr)
            return EXIT_FAILURE
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


def _stage_failure(exc: BaseException) -> tuple[int, str]:
    """(exit code, one line) for a failed standalone stage. In-process runners re-raise a
    worker's exception as it was; other runners wrap it, so its name is looked for in the text."""
    from pipeline.config import ConfigError
    from pipeline.run import OutputError
    from pipeline.standalone import InputError, ReadError

    usage = (InputError, ConfigError, OutputError)
    text = str(exc)
    if not isinstance(exc, (*usage, ReadError)):
        found = re.search(r"\b(InputError|BenchmarkError|ReadError): (.+)", text)
        if not found:
            line = re.sub(r" \[while running '[^']*'\]", "", _one_line(exc))
            return EXIT_FAILURE, f"run failed: {line}"
        exc_name, text = found.groups()
        code = EXIT_FAILURE if exc_name == "ReadError" else EXIT_USAGE
    else:
        code = EXIT_USAGE if isinstance(exc, usage) else EXIT_FAILURE
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return code, re.sub(r" \[while running '[^']*'\]$", "", first)


def _stray_argument(beam_args: list[str]) -> str | None:
    """A word among the Beam flags that is no flag's value: most likely the rest of an --input
    glob the shell expanded."""
    for i, arg in enumerate(beam_args):
        if arg.startswith("-"):
            continue
        before = beam_args[i - 1] if i else ""
        if not before.startswith("--") or "=" in before:
            return arg
    return None


def _unknown_flag(beam_args: list[str]) -> str | None:
    """A flag that is no Beam pipeline option (Beam itself would only log and ignore it)."""
    from apache_beam.options.pipeline_options import PipelineOptions

    known = PipelineOptions([]).get_all_options()
    for arg in beam_args:
        if arg.startswith("--"):
            name = arg[2:].split("=", 1)[0]
            if name not in known and name.replace("-", "_") not in known:
                return arg.split("=", 1)[0]
    return None


def cmd_stage(args, beam_args: list[str]) -> int:
    """``synthgen dedup`` / ``synthgen decontam``: one stage over a JSONL or Parquet data set."""
    from pipeline.config import ConfigError
    from pipeline.standalone import Job, run_stage, split_list, stage_config

    stray = _stray_argument(beam_args)
    if stray is not None:
        print(
            f"synthgen: unexpected argument {stray!r}; quote the --input glob so that the shell "
            "does not expand it",
            file=sys.stderr,
        )
        return EXIT_USAGE
    unknown = _unknown_flag(beam_args)
    if unknown is not None:
        print(
            f"synthgen: unrecognized argument {unknown}: neither a synthgen {args.command} flag "
            "nor a Beam pipeline option",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.command == "dedup":
        flags = {
            "threshold": args.threshold,
            "num_perm": args.num_perm,
            "shingle_size": args.shingle_size,
        }
    else:
        flags = {
            "benchmarks": split_list(args.benchmarks),
            "ngram": args.ngram,
            "field": args.benchmark_field,
        }
        if flags["benchmarks"] == ():
            print("synthgen: --benchmarks: name at least one benchmark", file=sys.stderr)
            return EXIT_USAGE
    try:
        cfg = stage_config(args.command, **flags)
    except ConfigError as exc:
        print(f"synthgen: {exc}", file=sys.stderr)
        return EXIT_USAGE
    beam_args = _beam_args(args, beam_args)
    job = Job(args.command, args.input, args.output, args.field, args.id_field, cfg)
    try:
        manifest = run_stage(job, beam_args, overwrite=args.overwrite)
    except Exception as exc:  # noqa: BLE001 - one line for the user; --debug for the traceback
        if args.debug:
            raise
        code, line = _stage_failure(exc)
        print(f"synthgen: {line}", file=sys.stderr)
        return code
    counts = manifest["counts"]
    reasons = ", ".join(f"{r} {n}" for r, n in counts["rejected_by_reason"].items())
    print(
        f"synthgen {args.command}: {counts['kept']} kept, {counts['rejected']} rejected"
        f"{f' ({reasons})' if reasons else ''} of {counts['input']} rows; "
        f"{manifest['elapsed_s']:.1f} s -> {args.output}"
    )
    if not counts["reconciled"]:
        print("synthgen: the counts do not reconcile; see manifest.json", file=sys.stderr)
        return EXIT_FAILURE
    return 0


def cmd_teacher_server(args, _beam_args) -> int:
    from pipeline.teacher.builtin.server import serve_from_args

    try:
        return serve_from_args(args)
    except ValueError as exc:
        print(f"synthgen: {exc}", file=sys.stderr)
        return EXIT_USAGE


def cmd_inspect(args, _beam_args) -> int:
    from pipeline.output.inspect import inspect_output

    try:
        text = inspect_output(
            args.output,
            samples=args.samples,
            rejected=args.rejected,
            sample=args.sample,
            seed=args.seed,
        )
    except (FileNotFoundError, ValueError) as exc:
        print(f"synthgen: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(text)
    return 0


def cmd_report(args, _beam_args) -> int:
    from pipeline.output.report import write_report

    try:
        path = write_report(args.output)
    except FileNotFoundError as exc:
        print(f"synthgen: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"synthgen: report -> {path}")
    return 0


def cmd_plan(args, _beam_args) -> int:
    from dataclasses import fields

    from pipeline.output.plan import Assumptions, format_plan, load_manifest, plan

    flags = {f.name: getattr(args, f.name) for f in fields(Assumptions)}  # one flag per field
    try:
        estimate = plan(load_manifest(args.output), args.target_tokens, Assumptions(**flags))
    except (FileNotFoundError, ValueError) as exc:
        print(f"synthgen: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps(estimate, indent=2) if args.json else format_plan(estimate))
    return 0


def cmd_sandbox_probe(args, _beam_args) -> int:
    from pipeline.sandbox.sandbox import Limits, Sandbox, SandboxUnavailable

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
    from pipeline.sandbox.sandbox import Limits, Sandbox, SandboxUnavailable

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


def _one_line_usage_error(p: argparse.ArgumentParser):
    """argparse prints the usage before its error; a bad flag value here is one line."""

    def error(message: str):
        p.exit(EXIT_USAGE, f"{p.prog}: {message}\n")

    return error


def _add_stage_parsers(sub) -> None:
    from pipeline.config import DecontamConfig, DedupConfig

    dedup_defaults = {k: f.default for k, f in DedupConfig.model_fields.items()}
    decontam_defaults = {k: f.default for k, f in DecontamConfig.model_fields.items()}
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--input", required=True, metavar="GLOB", help="JSONL (.jsonl, .jsonl.gz) or Parquet files"
    )
    common.add_argument(
        "--output", required=True, metavar="DIR", help="output directory (local, gs://, s3://)"
    )
    common.add_argument("--field", required=True, help="the text field of each row")
    common.add_argument(
        "--id-field",
        default="id",
        help="unique id field (default id); rows without it get <file index>:<row number>",
    )
    common.add_argument("--overwrite", action="store_true", help="replace an earlier run's outputs")
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks"
    )
    epilog = (
        "Writes DIR/data/ (surviving rows, every field), DIR/rejected/ (the others, plus reason "
        "and detail) and DIR/manifest.json. Flags not listed here go to Beam's PipelineOptions."
    )
    dedup_p = sub.add_parser(
        "dedup",
        parents=[common],
        help="drop exact and near duplicates from a JSONL or Parquet data set",
        description="Exact, then MinHash-LSH near-duplicate removal of FIELD; the smallest id "
        "of each cluster survives.",
        epilog=epilog,
    )
    dedup_p.add_argument(
        "--threshold",
        type=float,
        help="estimated Jaccard similarity of near duplicates "
        f"(default {dedup_defaults['threshold']})",
    )
    dedup_p.add_argument(
        "--num-perm",
        type=int,
        help=f"MinHash permutations (default {dedup_defaults['num_perm']})",
    )
    dedup_p.add_argument(
        "--shingle-size",
        type=int,
        help=f"words per shingle (default {dedup_defaults['shingle_size']})",
    )
    dedup_p.set_defaults(func=cmd_stage)

    decontam_p = sub.add_parser(
        "decontam",
        parents=[common],
        help="drop rows sharing a word n-gram with a benchmark",
        description="Drop every row whose FIELD shares a word n-gram with a benchmark item.",
        epilog=epilog,
    )
    decontam_p.add_argument(
        "--benchmarks",
        metavar="NAMES",
        help="comma-separated built-in names (humaneval, gsm8k, aime2025) or JSONL/Parquet "
        f"files (default {','.join(decontam_defaults['benchmarks'])})",
    )
    decontam_p.add_argument(
        "--ngram", type=int, help=f"words per n-gram (default {decontam_defaults['ngram']})"
    )
    decontam_p.add_argument(
        "--benchmark-field",
        help=f"text field of benchmark files (default {decontam_defaults['field']})",
    )
    decontam_p.set_defaults(func=cmd_stage)
    for p in (dedup_p, decontam_p):
        p.error = _one_line_usage_error(p)


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

    _add_stage_parsers(sub)

    from pipeline.teacher.builtin.server import add_arguments

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
    inspect_p.add_argument(
        "--samples", type=int, default=3, help="rows shown per table, also with --rejected"
    )
    inspect_p.add_argument(
        "--rejected", metavar="REASON", help="show rejected rows with this reason or stage/reason"
    )
    inspect_p.add_argument(
        "--sample", type=int, metavar="N", help="show N kept samples drawn at random (seeded)"
    )
    inspect_p.add_argument("--seed", type=int, default=0, help="seed of --sample's draw")
    inspect_p.set_defaults(func=cmd_inspect)

    report_p = sub.add_parser(
        "report", help="write OUT/report.html: plots and tables of a finished output"
    )
    report_p.add_argument("output")
    report_p.set_defaults(func=cmd_report)

    from pipeline.output.plan import Assumptions

    assumed = Assumptions()
    plan_p = sub.add_parser(
        "plan",
        help="estimate teacher calls, cost, workers, hours and dedup memory from a pilot run",
        description="Scale a pilot run to a target of kept tokens: teacher calls and tokens, "
        "cost, sandbox checks, dedup shuffle and memory, Dataflow workers and hours. "
        "docs/scale.md explains every number.",
    )
    plan_p.add_argument("output", help="the pilot's output directory (or its manifest.json)")
    plan_p.add_argument(
        "--target-tokens", type=float, required=True, metavar="N", help="kept tokens wanted"
    )
    plan_p.add_argument(
        "--price-prompt",
        type=float,
        metavar="USD",
        help="per 1M prompt tokens (default: the config's teacher.prices)",
    )
    plan_p.add_argument(
        "--price-completion",
        type=float,
        metavar="USD",
        help="per 1M completion tokens (default: the config's teacher.prices)",
    )
    plan_p.add_argument(
        "--teacher-latency-s",
        type=float,
        default=assumed.teacher_latency_s,
        help=f"mean seconds per teacher call (default {assumed.teacher_latency_s:g})",
    )
    plan_p.add_argument(
        "--concurrency",
        type=int,
        help="calls in flight per stage per worker process (default: the config's)",
    )
    plan_p.add_argument("--rpm", type=int, help="API requests per minute (default: the config's)")
    plan_p.add_argument("--tpm", type=int, help="API tokens per minute (default: the config's)")
    size = plan_p.add_mutually_exclusive_group()
    size.add_argument("--workers", type=int, help="a fixed number of workers: plan the hours")
    size.add_argument(
        "--hours",
        type=float,
        default=assumed.hours,
        help=f"plan the workers to finish in this many hours (default {assumed.hours:g})",
    )
    for flag, kind, what in (
        ("--cores-per-worker", int, "vCPUs per worker (n1-standard-4)"),
        ("--memory-gb-per-worker", float, "GB of memory per worker (n1-standard-4)"),
        ("--vcpu-hour-usd", float, "Dataflow price per vCPU-hour"),
        ("--gb-hour-usd", float, "Dataflow price per GB-hour"),
        ("--shuffle-gb-usd", float, "Dataflow Shuffle price per GB"),
    ):
        default = getattr(assumed, flag[2:].replace("-", "_"))
        plan_p.add_argument(flag, type=kind, default=default, help=f"{what} (default {default:g})")
    plan_p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    plan_p.set_defaults(func=cmd_plan)
    plan_p.error = _one_line_usage_error(plan_p)

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
    if extra and args.command not in _BEAM_COMMANDS:
        print(f"synthgen: unrecognized arguments: {' '.join(extra)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return args.func(args, extra)
    except BrokenPipeError:  # `synthgen inspect out | head`: the reader left, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
