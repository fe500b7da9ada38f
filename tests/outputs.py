"""A real synthgen output for the tests that read one (importable: pytest puts tests/ on sys.path).

One small quickstart run per test session, made on first use and shared by every test module
that asks: 2 domains x 3 topics x 3 difficulties x 3 problems = 54 problems, written to 16
shards so that ``rejected/`` (about 15 rows) must have empty shards, and packed into
``packed/`` sequences of 1,024 tokens.
"""

from __future__ import annotations

from pathlib import Path

SHARDS = 16
QUICKSTART = Path(__file__).resolve().parents[1] / "examples" / "quickstart.yaml"
_made: dict[str, Path] = {}


def quickstart_output(tmp_path_factory) -> Path:
    """The output directory of the shared run; only read it, other modules use it too."""
    if "out" not in _made:
        from pipeline.config import load_config
        from pipeline.run import run

        tmp = tmp_path_factory.mktemp("quickstart")
        cfg = load_config(
            str(QUICKSTART),
            [
                "run.problems_per_combo=3",
                f"output.shards={SHARDS}",
                "tokens.pack=1024",
                f"teacher.cache_dir={tmp / 'cache'}",
            ],
        )
        run(cfg, str(tmp / "out"), ["--runner=FnApiRunner"])
        _made["out"] = tmp / "out"
    return _made["out"]
