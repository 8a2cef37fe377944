"""Benchmark: the daily DAG's wall time for a demo day: compiled bytecode vs none, or its Spark
tasks in the warm job server vs spark-submit.

What an operator waits for each day: `airflow dags test checkout_age_daily D` (every task: the
landing sensor, the model pin, Spark scoring and reports, drift, the quality check,
minimisation, rollups, the HTML report), on days like `make demo`'s (3 stores, 60 receipts
a store, frames), in a throw-away Airflow home and data root, with the demo's model registry.
"Without" runs every process with an empty PYTHONPYCACHEPREFIX and nothing written: a venv
installed without compiled bytecode where nothing may write it (PYTHONDONTWRITEBYTECODE, a
read-only venv), as `make setup` made them before 2026-12-06. Modes alternate: with, without,
without, with, ...

`--compare job-server`: the same days with `CHECKOUT_AGE_JOB_SERVER` set (the score and reports
tasks sent to one `checkout-age job-server` started before the first day, warm after it) against
spark-submit per task, alternating the same way.

Results: bench/results/bench_daily_dag.json, with the load average.

    .venv/bin/python bench/bench_daily_dag.py --days 4
    MODEL_REGISTRY=var/exp .venv/bin/python bench/bench_daily_dag.py --days 4 \
        --compare job-server --out bench/results/bench_daily_dag-job-server.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from bench.run_record import progress, publish, run_record  # noqa: E402

RESULTS = PROJECT / "bench" / "results" / "bench_daily_dag.json"
FIRST_DAY = "2026-03-16"


def airflow_env(home: Path) -> dict[str, str]:
    """The demo's Airflow environment (scripts/airflow_env.sh), a throw-away home and data root."""
    base = {**os.environ, "CHECKOUT_AGE_DATA_ROOT": str(home / "data"),
            "AIRFLOW_HOME": str(home / "airflow"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    dump = subprocess.run(["bash", "-c", "source scripts/airflow_env.sh && env -0"], cwd=PROJECT,
                          env=base, capture_output=True, text=True, check=True).stdout
    env = dict(item.split("=", 1) for item in dump.split("\0") if "=" in item)
    env["AIRFLOW_VAR_CHECKOUT_AGE_FACES_DIR"] = env["FACES_DIR"]
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=4, help="demo days, modes alternating")
    parser.add_argument("--compare", choices=("bytecode", "job-server"), default="bytecode",
                        help="what the two modes differ in (default %(default)s)")
    parser.add_argument("--quick", action="store_true", help="no results file")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    if not os.environ.get("FACES_DIR"):
        raise SystemExit("set FACES_DIR to the labelled face set")
    started, load_before = time.time(), os.getloadavg()
    airflow = PROJECT / ".venv-airflow" / "bin" / "airflow"
    cli = PROJECT / ".venv" / "bin" / "checkout-age"
    plain, other = ("with", "without") if args.compare == "bytecode" else (
        "spark_submit", "job_server")
    modes = [(plain, other, other, plain)[i % 4] for i in range(args.days)]
    runs: dict[str, list[dict]] = {plain: [], other: []}
    server_start_s = None  # --compare job-server: seconds until the server listened
    with tempfile.TemporaryDirectory(prefix="bench-daily-dag-") as tmp_name, ExitStack() as stack:
        home, empty = Path(tmp_name), Path(tmp_name) / "no-bytecode"
        empty.mkdir()
        env = airflow_env(home)
        changes_of = {plain: {}, other: {"PYTHONPYCACHEPREFIX": str(empty),
                                         "PYTHONDONTWRITEBYTECODE": "1"}}
        if args.compare == "job-server":
            from bench.bench_job_server import start_server

            server, url, server_start_s = start_server(home, env)
            stack.callback(server.wait, timeout=120)
            stack.callback(server.send_signal, signal.SIGTERM)
            changes_of[other] = {"CHECKOUT_AGE_JOB_SERVER": url}
        subprocess.run([str(airflow), "db", "migrate"], env=env, check=True, capture_output=True)
        first = dt.date.fromisoformat(FIRST_DAY)
        days = [(first + dt.timedelta(days=i)).isoformat() for i in range(args.days)]
        for i, day in enumerate(days):
            progress(f"simulating {day}")
            subprocess.run([str(cli), "simulate", "--date", day, "--stores", "3",
                            "--receipts-per-store", "60", "--faces", env["FACES_DIR"], "--root",
                            env["CHECKOUT_AGE_DATA_ROOT"], "--seed", str(1337 + i), "--frames"],
                           env=env, check=True, capture_output=True)
        for day, mode in zip(days, modes, strict=True):
            progress(f"daily DAG {day}, {mode}")
            changes = changes_of[mode]
            wall = time.perf_counter()
            done = subprocess.run([str(airflow), "dags", "test", "checkout_age_daily", day],
                                  env={**env, **changes}, capture_output=True, text=True)
            seconds = time.perf_counter() - wall
            if done.returncode != 0 or "state=success" not in done.stdout + done.stderr:
                raise RuntimeError(f"daily DAG {day} failed:\n{(done.stdout + done.stderr)[-3000:]}")
            output = done.stdout + done.stderr
            if mode == "job_server" and (output.count("sent to the job server") < 2
                                         or "own Spark application" in output):
                raise RuntimeError(f"daily DAG {day}: the job server did not take both jobs:\n"
                                   f"{output[-3000:]}")
            runs[mode].append({"day": day, "seconds": round(seconds, 1),
                               "load_avg_after": os.getloadavg()[0]})
        if any(empty.iterdir()):
            raise RuntimeError(f"bytecode was written under {empty}: not a run without it")
    medians = {mode: round(statistics.median(r["seconds"] for r in rs), 1)
               for mode, rs in runs.items() if rs}
    result = {"dag": "checkout_age_daily", "day": "3 stores, 60 receipts a store, frames",
              "compare": args.compare, "server_start_s": server_start_s, "runs": runs, "median_seconds": medians,
              # the mode that pays more over the one that pays less
              "speedup": round(max(medians.values()) / min(medians.values()), 2)
              if len(medians) == 2 else None,
              "run": run_record(started, load_before)}
    publish(result, args.out, keep=not args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
