"""One simulated day run through both daily Spark jobs, as the `reported_day` fixture builds it.

The end-to-end test checks its counts and the contract test its tables: one Spark run serves both
(`tests/jobs/conftest.py` builds it once per session).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, NamedTuple

REPORTED_DAY = "2026-03-14"
STORES, RECEIPTS_PER_STORE, SEED = 6, 100, 11


class ReportedDay(NamedTuple):
    """What `run_reported_day` made."""

    root: Path  # data root: landing/, ground_truth/, reports/<table>/date=REPORTED_DAY/
    simulated: Any  # jobs.simulator.simulate.SimulatedDay: what was written, and the truth
    scored: dict  # `checkout-age score --json` result
    reported: dict  # `checkout-age reports --json` result


def run_cli(*args: str) -> dict:
    """Run the installed `checkout-age` command with `--json`; its last output line, parsed."""
    command = [str(Path(sys.executable).parent / "checkout-age"), *args, "--json"]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_reported_day(faces_dir: Path, registry: Path, root: Path, cache: Path) -> ReportedDay:
    """Simulate REPORTED_DAY under `root`, score it with `registry`'s production model through
    `checkout-age score` (spark-submit), then build its reports through `checkout-age reports`."""
    from jobs.simulator.landing import load_test_faces, write_day
    from jobs.simulator.simulate import simulate_day

    faces = load_test_faces(faces_dir, cache)
    # Face crops (the older landing format): the day of frames is tests/jobs/daily/
    # test_daily_e2e.py's `frames_day`, smaller (frames cost ~2.4x the CPU of crops to score).
    simulated = simulate_day(faces, REPORTED_DAY, STORES, RECEIPTS_PER_STORE, SEED)
    write_day(simulated, str(root))
    scored = run_cli("score", "--date", REPORTED_DAY, "--root", str(root), "--registry",
                     str(registry), "--master", "local[1]")
    reported = run_cli("reports", "--date", REPORTED_DAY, "--root", str(root),
                       "--master", "local[1]")
    return ReportedDay(root, simulated, scored, reported)
