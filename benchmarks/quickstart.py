"""Wall time and records per second of the offline quickstart, end to end.

Runs ``synthgen run examples/quickstart.yaml`` as a user would (a fresh process, the built-in
teacher, the default runner) into a temporary directory, then reads the manifest.

    python benchmarks/quickstart.py [--config examples/quickstart.yaml] [--set KEY=VALUE ...]

Prints ``RESULT quickstart_seconds <s>`` and ``RESULT quickstart_records_per_s <seeds/s>``
(requested problems, whatever their fate, per second of wall time).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "examples" / "quickstart.yaml"))
    ap.add_argument("--set", action="append", default=[])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        command = [sys.executable, "-m", "pipeline.cli", "run", args.config, "--output", str(out)]
        for assignment in args.set:
            command += ["--set", assignment]
        # A fresh response cache: a warm one would serve every teacher call from disk.
        env = {**os.environ, "SYNTHGEN_CACHE_DIR": str(Path(tmp) / "cache")}
        started = time.perf_counter()
        subprocess.run(command, check=True, env=env)
        seconds = time.perf_counter() - started
        manifest = json.loads((out / "manifest.json").read_text())
    funnel = manifest["funnel"]
    print(
        f"requested {funnel['requested']}, kept {funnel['kept']}, rejected {funnel['rejected']}, "
        f"attempts {manifest['attempts']['rows']}, tokens {manifest['tokens']['data']}, "
        f"teacher requests {manifest['teacher']['total'].get('requests', 0)}"
    )
    print(f"RESULT quickstart_seconds {seconds:.2f}")
    print(f"RESULT quickstart_records_per_s {funnel['requested'] / seconds:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
