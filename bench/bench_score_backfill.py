"""Benchmark: a backfill scored as one Spark application against one application per day.

`checkout-age score --date D1 --to D3` (one spark-submit: the JVM, the session, the model's
resolution and the Python workers' start-up paid once) against three `checkout-age score
--date D` commands on the same three simulated days (the daily DAG's way), alternating, for
days of checkout frames and of face crops. Per run: wall, core-seconds of the whole process
tree, core utilisation; per day of the range its own phases from the job's log (`PhaseClock`),
so the rate of a day after the first, one that pays no start-up, is measured, not inferred.

Results: bench/results/bench_score_backfill.json, with the load average.

    .venv/bin/python bench/bench_score_backfill.py --model v0001 --registry var/mlflow
    .venv/bin/python bench/bench_score_backfill.py --size 240 --repeats 1 --quick
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from bench.bench_score_paths import CLI, DAY, TreeUsage  # noqa: E402
from bench.bench_score_scale import add_bench_arguments, phase_lines, score_bench  # noqa: E402
from bench.run_record import progress, publish, run_record  # noqa: E402

RESULTS = PROJECT / "bench" / "results" / "bench_score_backfill.json"


def score(root: Path, first: str, last: str | None, model_ref: str, env: dict) -> dict:
    """One `checkout-age score` command (a range when `last`): wall, core-s, the days' phases."""
    command = [str(CLI), "score", "--date", first, *(["--to", last] if last else []),
               "--root", str(root), "--model", model_ref, "--master", "local[2]", "--json"]
    wall = time.perf_counter()
    with TreeUsage() as usage:
        done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - wall
    if done.returncode != 0:
        raise RuntimeError(f"score failed on {root}:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    days = result.get("days", [result])
    phases = phase_lines(done.stderr)
    return {"seconds": round(seconds, 2), "core_s": round(usage.core_seconds(), 1),
            "core_utilisation": round(usage.core_seconds() / (2 * seconds), 3),
            "photos": [day["photos_in"] for day in days], "day_phases_s": phases,
            "python_worker_peak_rss_mib_max": usage.summary()["python_worker_peak_rss_mib_max"]}


def summary(ranged: list[dict], separate: list[list[dict]]) -> dict:
    """Medians of each way and the rate of the range's days after the first."""
    photos = sum(ranged[0]["photos"])
    range_s = statistics.median(run["seconds"] for run in ranged)
    separate_s = statistics.median(sum(job["seconds"] for job in jobs) for jobs in separate)
    later = [(n, sum(phases.values())) for run in ranged
             for n, phases in zip(run["photos"][1:], run["day_phases_s"][1:], strict=True)]
    first_day = ranged[0]["photos"][0]
    return {
        "photos": photos, "days": len(ranged[0]["photos"]),
        "range_run_s_median": range_s, "one_run_per_day_s_median": separate_s,
        "speed_up": round(separate_s / range_s, 2),
        "range_photos_per_s": round(photos / range_s, 1),
        "one_run_per_day_photos_per_s": round(photos / separate_s, 1),
        "range_core_utilisation_median": statistics.median(
            run["core_utilisation"] for run in ranged),
        "one_run_per_day_core_utilisation_median": statistics.median(
            statistics.fmean(job["core_utilisation"] for job in jobs) for jobs in separate),
        "first_day_in_range_s_median": statistics.median(
            sum(run["day_phases_s"][0].values()) for run in ranged),
        "first_day_photos": first_day,
        "later_day_s_median": statistics.median(s for _, s in later),
        "later_day_photos_per_s_median": statistics.median(round(n / s, 1) for n, s in later),
        "runs": {"range": ranged, "one_run_per_day": separate},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_bench_arguments(parser, RESULTS)
    parser.add_argument("--size", type=int, default=1200,
                        help="photos per day (about; the simulator's faults remove some)")
    parser.add_argument("--days", type=int, default=3, help="days in the range")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each way and kind")
    args = parser.parse_args()
    started, load_before = time.time(), os.getloadavg()

    from jobs.simulator.landing import write_day
    from jobs.simulator.simulate import simulate_day

    registry, version, pin, faces, env = score_bench(args.registry, args.model)
    env = {**env, "MODEL_REGISTRY": registry}
    first = dt.date.fromisoformat(DAY)
    dates = [(first + dt.timedelta(days=n)).isoformat() for n in range(args.days)]
    result: dict = {"model": version.version, "model_ref": pin, "size": args.size,
                    "dates": dates, "image_size": version.image_size, "kinds": {}}
    with tempfile.TemporaryDirectory(prefix="bench-score-backfill-") as tmp_name:
        for kind, frames in (("frames", True), ("crops", False)):
            ranged_root = Path(tmp_name) / f"{kind}-range"
            separate_root = Path(tmp_name) / f"{kind}-days"
            for n, date in enumerate(dates):
                progress(f"simulating {date}: {args.size} {kind}")
                write_day(simulate_day(faces, date, 4, args.size // 4, seed=11 + n,
                                       frames=frames), str(ranged_root))
            shutil.copytree(ranged_root / "landing", separate_root / "landing")
            ranged, separate = [], []
            for _ in range(args.repeats):  # alternating: both ways see the same machine
                progress(f"{kind}: one run for {dates[0]} to {dates[-1]}")
                ranged.append(score(ranged_root, dates[0], dates[-1], pin, env))
                progress(f"{kind}: one run per day")
                separate.append([score(separate_root, date, None, pin, env) for date in dates])
            result["kinds"][kind] = summary(ranged, separate)
    result["run"] = run_record(started, load_before)
    publish(result, args.out, keep=not args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
