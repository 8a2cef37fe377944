"""Wall time of the production-shape test (`make production-shape`), the one CI must afford.

Usage: .venv-airflow/bin/python bench/bench_production_shape.py

Runs tests/dags/test_production_shape.py once in the Airflow venv, as `make production-shape`
does, and writes bench/results/production_shape.json: the whole wall time, each test's time
(a test's time includes the fixtures it starts: the reference run and the services start with
the first test that needs them), the outcome, and the 1-minute load average before and after,
so a figure taken on a shared machine is known as one.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
RESULTS = PROJECT / "bench" / "results" / "production_shape.json"


def main() -> int:
    """Run the test module once; write the results JSON; exit with pytest's status."""
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        started = time.monotonic()
        done = subprocess.run(
            [str(PROJECT / ".venv-airflow" / "bin" / "pytest"),
             "tests/dags/test_production_shape.py", "-q", "-p", "no:cacheprovider",
             f"--junitxml={junit}"], cwd=PROJECT)
        wall = time.monotonic() - started
        cases = ET.parse(junit).getroot().iter("testcase") if junit.exists() else []
        tests = {case.get("name"): round(float(case.get("time", 0)), 1) for case in cases}
    results = {
        "what": "tests/dags/test_production_shape.py, whole module",
        "passed": done.returncode == 0,
        "wall_s": round(wall, 1),
        "tests_s": tests,
        "load_average_1m": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
