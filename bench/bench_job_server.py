"""Benchmark: a day's jobs in the warm job server against a day as its own Spark application.

`checkout-age score --server URL` (the day sent to `checkout-age job-server`, one Spark
application that outlives days) against `checkout-age score` (spark-submit: the JVM, the
session, the Python workers and Spark's first stages started for the day, as the daily DAG
runs it without a server), on the same simulated day of 1,200 checkout frames and of 1,200
face crops, alternating, and the same for `checkout-age reports`. What is timed is the
command a user or the DAG runs, start to exit. Per run: wall, core-seconds of every process
that worked for it (the command's own tree; for the server, what its JVM and workers spent
during the request), core utilisation. Also the server's start and its first day (cold
workers), which a long-running server pays once.

Results: bench/results/bench_job_server.json, with the load average.

    .venv/bin/python bench/bench_job_server.py --model v0001 --registry var/mlflow
    .venv/bin/python bench/bench_job_server.py --size 120 --repeats 1 --quick
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from bench.bench_score_paths import CLI, DAY, SCORE_GOALS, TreeUsage  # noqa: E402
from bench.bench_score_scale import add_bench_arguments, phase_lines, score_bench  # noqa: E402
from bench.run_record import progress, publish, run_record  # noqa: E402

RESULTS = PROJECT / "bench" / "results" / "bench_job_server.json"


def _tree_cpu() -> dict[int, float]:
    """CPU seconds so far of every process under this one (the server's JVM and workers)."""
    import psutil

    times = {}
    for proc in psutil.Process().children(recursive=True):
        try:
            cpu = proc.cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        times[proc.pid] = cpu.user + cpu.system
    return times


def command(args: list[str], env: dict) -> dict:
    """One `checkout-age` command: wall, core-s of everything that ran for it, its result."""
    before = _tree_cpu()  # the server's processes: only what they spend from here counts
    wall = time.perf_counter()
    with TreeUsage() as usage:
        done = subprocess.run([str(CLI), *args, "--json"], env=env, capture_output=True,
                              text=True)
    seconds = time.perf_counter() - wall
    if done.returncode != 0:
        raise RuntimeError(f"{args} failed:\n{done.stderr[-3000:]}")
    if "own Spark application" in done.stderr and "--server" in args:
        raise RuntimeError(f"{args}: the server did not take the job:\n{done.stderr[-3000:]}")
    core_s = sum(cpu - before.get(pid, 0.0) for pid, cpu in usage.cpu.items())
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {"seconds": round(seconds, 2), "core_s": round(core_s, 1),
            "core_utilisation": round(core_s / (2 * seconds), 3),
            "photos": result.get("photos_in"), "phases_s": phase_lines(done.stderr)}


def start_server(tmp: Path, env: dict) -> tuple[subprocess.Popen, str, float]:
    """`checkout-age job-server` on a free port: the process, its URL, seconds to listen."""
    ready = tmp / "server.url"
    wall = time.perf_counter()
    server = subprocess.Popen([str(CLI), "job-server", "--port", "0", "--master", "local[2]",
                               "--ready-file", str(ready)], env=env,
                              stdout=subprocess.DEVNULL, stderr=(tmp / "server.log").open("w"))
    while not ready.exists():
        if server.poll() is not None:
            raise RuntimeError((tmp / "server.log").read_text()[-3000:])
        time.sleep(0.1)
    return server, ready.read_text().strip(), round(time.perf_counter() - wall, 2)


def summary(own: list[dict], served: list[dict], photos: int | None) -> dict:
    """Medians of each way, their ratio and the rates the goals name."""
    own_s = statistics.median(run["seconds"] for run in own)
    served_s = statistics.median(run["seconds"] for run in served)
    out = {"own_application_s_median": own_s, "job_server_s_median": served_s,
           "speed_up": round(own_s / served_s, 2),
           "own_application_core_s_median": statistics.median(run["core_s"] for run in own),
           "job_server_core_s_median": statistics.median(run["core_s"] for run in served),
           "own_application_core_utilisation_median": statistics.median(
               run["core_utilisation"] for run in own),
           "job_server_core_utilisation_median": statistics.median(
               run["core_utilisation"] for run in served),
           "runs": {"own_application": own, "job_server": served}}
    if photos:
        out.update(photos=photos, own_application_photos_per_s=round(photos / own_s, 1),
                   job_server_photos_per_s=round(photos / served_s, 1),
                   job_server_core_s_per_photo=round(out["job_server_core_s_median"] / photos, 4))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_bench_arguments(parser, RESULTS)
    parser.add_argument("--size", type=int, default=1200,
                        help="photos per day (about; the simulator's faults remove some)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each way and job")
    args = parser.parse_args()
    started, load_before = time.time(), os.getloadavg()

    from jobs.simulator.landing import write_day
    from jobs.simulator.simulate import simulate_day

    registry, version, pin, faces, env = score_bench(args.registry, args.model)
    env = {**env, "MODEL_REGISTRY": registry}
    result: dict = {"model": version.version, "model_ref": pin, "size": args.size,
                    "image_size": version.image_size, "kinds": {}}
    with tempfile.TemporaryDirectory(prefix="bench-job-server-") as tmp_name:
        tmp = Path(tmp_name)
        roots = {}
        for kind, frames in (("frames", True), ("crops", False)):
            progress(f"simulating {DAY}: {args.size} {kind}")
            own, served = tmp / f"{kind}-own", tmp / f"{kind}-served"
            write_day(simulate_day(faces, DAY, 4, args.size // 4, seed=11, frames=frames),
                      str(own))
            shutil.copytree(own / "landing", served / "landing")
            roots[kind] = own, served
        progress("starting the job server")
        server, url, start_s = start_server(tmp, env)
        result["server"] = {"start_s": start_s}
        try:
            for kind in ("frames", "crops"):
                own_root, served_root = roots[kind]
                day = ["--date", DAY, "--model", pin, "--master", "local[2]"]
                progress(f"{kind}: the server's first day")
                first = command(["score", *day, "--root", str(served_root), "--server", url], env)
                result["server"].setdefault("first_day", {})[kind] = first
                score_own, score_served, reports_own, reports_served = [], [], [], []
                for _ in range(args.repeats):  # alternating: both ways see the same machine
                    progress(f"{kind}: score, own application / job server")
                    score_own.append(command(["score", *day, "--root", str(own_root)], env))
                    score_served.append(command(["score", *day, "--root", str(served_root),
                                                 "--server", url], env))
                    progress(f"{kind}: reports, own application / job server")
                    reports = ["reports", "--date", DAY, "--master", "local[2]"]
                    reports_own.append(command([*reports, "--root", str(own_root)], env))
                    reports_served.append(command([*reports, "--root", str(served_root),
                                                   "--server", url], env))
                photos = score_own[0]["photos"]
                result["kinds"][kind] = {
                    "score": summary(score_own, score_served, photos),
                    "reports": summary(reports_own, reports_served, None),
                    "score_and_reports_s_median": {
                        "own_application": round(statistics.median(
                            a["seconds"] + b["seconds"]
                            for a, b in zip(score_own, reports_own, strict=True)), 2),
                        "job_server": round(statistics.median(
                            a["seconds"] + b["seconds"]
                            for a, b in zip(score_served, reports_served, strict=True)), 2)}}
        finally:
            server.send_signal(signal.SIGTERM)
            result["server"]["exit_status"] = server.wait(timeout=120)
    result["goals"], result["run"] = SCORE_GOALS, run_record(started, load_before)
    publish(result, args.out, keep=not args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
