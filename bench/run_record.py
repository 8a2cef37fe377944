"""What every benchmark's results file says about its run, and how it is written.

The machine is shared: the 1-minute load average before and after is recorded, and a run that
started above 2.5 on the 2 cores is marked as a loaded-machine figure to be taken again.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

QUIET_LOAD = 2.5


def run_record(started: float, load_before: tuple[float, float, float]) -> dict:
    """The `run` entry: cores, Python, start (UTC), load before/after, seconds, quiet or not.

    `started` is the `time.time()` and `load_before` the `os.getloadavg()` taken at the start.
    """
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "when_utc": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(started)),
            "load_avg_at_start": load_before, "load_avg_at_end": os.getloadavg(),
            "seconds": time.time() - started,
            "note": "loaded machine: figures to be rerun on a quiet one"
            if max(load_before) > QUIET_LOAD else "quiet machine"}


def publish(result: dict, out: str | Path, *, keep: bool) -> None:
    """Print `result` as JSON, and write it to `out` when `keep` (not for a --quick try)."""
    text = json.dumps(result, indent=2, default=float)
    print(text)  # noqa: T201 - a benchmark's output is its figures
    if keep:
        Path(out).write_text(text + "\n")


def progress(message: str) -> None:
    """One timestamped progress line on stderr (stdout carries the results JSON)."""
    sys.stderr.write(f"{time.strftime('%H:%M:%S')} {message}\n")
    sys.stderr.flush()
