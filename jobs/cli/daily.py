"""`checkout-age simulate | score | reports | job-server`: fill a landing day, run the two daily
Spark jobs (each as its own application, or in the warm job server).

`score` and `reports` build a `spark-submit` command for `jobs/daily/score_photos.py` and
`jobs/daily/reports.py` (the same command Airflow's SparkSubmitOperator runs) and report the job's
counts. Heavy imports happen inside the handlers so `--help` stays instant.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from jobs.daily.arguments import (
    JOB_SERVER_PORT,
    add_day_arguments,
    add_reports_arguments,
    add_score_arguments,
)
from model.config import Settings, load_settings
from model.errors import UserError

log = logging.getLogger(__name__)
JOBS_DIR = Path(__file__).resolve().parents[1] / "daily"  # the spark-submit applications


def spark_submit_command(script: str, master: str, job_args: list[str],
                         driver_memory: str = "2g") -> list[str]:
    """`<venv>/bin/spark-submit --master M ... jobs/<script> <job_args>` for this venv."""
    submit = Path(sys.executable).parent / "spark-submit"
    return [
        str(submit), "--master", master, "--driver-memory", driver_memory,
        "--conf", f"spark.pyspark.python={sys.executable}",
        "--conf", f"spark.pyspark.driver.python={sys.executable}",
        str(JOBS_DIR / script), *job_args,
    ]


def _has_fileno(stream: object) -> bool:
    try:
        stream.fileno()  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return False
    return True


def _submit(script: str, master: str, job_args: list[str]) -> dict:
    """Run a job through spark-submit; return the JSON it wrote, or raise UserError."""
    from jobs.daily.spark import launch_env

    with tempfile.TemporaryDirectory(prefix="checkout-age-") as tmp:
        out = Path(tmp) / "result.json"
        command = spark_submit_command(script, master, [*job_args, "--result-json", str(out)])
        log.info("running %s", " ".join(command))
        # spark-submit's Python driver writes its log to its stdout (the JVM merges the two):
        # onto our stderr, so an operator sees why a job failed; our stdout stays the result.
        status = subprocess.run(command, env=launch_env(), stdout=sys.stderr.fileno()
                                if _has_fileno(sys.stderr) else subprocess.DEVNULL, check=False)
        result = json.loads(out.read_text()) if out.is_file() else None
        # A range run writes its result even when some of its days failed (exit status 2).
        if result is None or (status.returncode != 0 and not result.get("failed")):
            raise UserError(f"{script} failed with exit status {status.returncode} (log above)")
        return result


def _emit(result: dict, as_json: bool, lines: list[str]) -> int:
    if as_json:
        sys.stdout.write(json.dumps(result, sort_keys=True, default=str) + "\n")
    else:
        sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from jobs.contract import check_date
    from jobs.simulator.camera_faults import parse_camera_fault
    from jobs.simulator.landing import load_test_faces, write_day
    from jobs.simulator.simulate import simulate_day

    settings = load_settings()
    run_date = check_date(args.date)
    if args.faces is None:
        raise UserError("no face set: pass --faces DIR or set FACES_DIR")
    if args.stores < 1 or args.receipts_per_store < 1:
        raise UserError("--stores and --receipts-per-store must be at least 1")
    faces = load_test_faces(Path(args.faces), settings.cache_dir, min_age=settings.min_age,
                            max_age=settings.max_age)
    fault = parse_camera_fault(args.camera_fault) if args.camera_fault else None
    day = simulate_day(faces, run_date, args.stores, args.receipts_per_store, args.seed,
                       frames=args.frames, camera_fault=fault)
    landing = write_day(day, args.root)
    result = {"date": run_date, "landing": str(landing), "receipts": len(day.truth_receipts),
              "receipt_lines": len(day.lines), "photos": len(day.photos),
              "injected": day.summary["injected"]}
    return _emit(result, args.json, [
        f"simulated {run_date}: {result['receipts']} receipts, {result['receipt_lines']} lines, "
        f"{result['photos']} photos -> {landing}",
    ])


JOB_NAMES = {"score_photos.py": "score", "reports.py": "reports"}  # the job server's names


def _run_job(script: str, args: argparse.Namespace) -> dict:
    """Run `script` on the day in `args` with the job flags the user set (`job_actions`): in
    the job server when one is set and takes it, else as its own Spark application."""
    from jobs.daily.arguments import job_argv
    from jobs.daily.day_range import day_range

    day_range(args.date, args.date_to)  # fail fast, before a JVM starts
    job_args = ["--date", args.date, "--root", args.root, *job_argv(args.job_actions, args)]
    if args.server:
        from jobs.daily.job_client import ServerUnavailable, run_on_server

        try:
            return run_on_server(args.server, JOB_NAMES[script], job_args, load_settings())
        except ServerUnavailable as exc:
            log.warning("job server %s: %s; running %s as its own Spark application (%s)",
                        args.server, exc, script, args.master)
    return _submit(script, args.master, job_args)


def _scored_line(day: dict) -> str:
    return (f"scored {day['date']} with model {day['model_version']}: "
            f"{day['photos_in']} photos in, {day['photos_scored']} scored, "
            f"{day['photos_quarantined']} quarantined {day['quarantine_reasons']}")


def _reported_line(day: dict) -> str:
    return (f"reports for {day['date']}: {day['receipts_valid']} receipts "
            f"({day['receipts_quarantined']} quarantined), {day['receipts_matched']} matched to "
            f"a photo (match rate {day['match_rate'] or 0:.1%}), model {day['model_version']}")


def _emit_days(result: dict, as_json: bool, day_line: Callable[[dict], str], done: str) -> int:
    """Print a job's result: one day's line, or a range's lines and the days it could not do.

    Exit status 1 when a day of a range failed (each failed day is named with why)."""
    if "days" not in result:
        return _emit(result, as_json, [day_line(result)])
    lines = [day_line(day) for day in result["days"]]
    lines += [f"not {done} {day['date']}: {day['error']}" for day in result["failed"]]
    lines.append(f"{result['date_from']} to {result['date_to']}: {len(result['days'])} days "
                 f"{done}, {len(result['failed'])} not")
    _emit(result, as_json, lines)
    return 1 if result["failed"] else 0


def _score(args: argparse.Namespace) -> int:
    return _emit_days(_run_job("score_photos.py", args), args.json, _scored_line, "scored")


def _reports(args: argparse.Namespace) -> int:
    return _emit_days(_run_job("reports.py", args), args.json, _reported_line, "reported")


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Attach `simulate`, `score`, `reports` and `job-server` to the top-level parser."""
    settings = load_settings()

    sim = subparsers.add_parser(
        "simulate", help="write one simulated checkout day into the landing zone",
        description="Generate a realistic day (stores, lanes, cashiers, receipts, photos from the "
        "face set's test split, faults) under ROOT/landing/date=D plus its ground truth.",
    )
    add_day_arguments(sim, settings.data_root, "simulate")
    sim.add_argument("--stores", type=int, default=5, help="number of stores (default 5)")
    sim.add_argument("--receipts-per-store", type=int, default=100,
                     help="customers per store (default 100)")
    sim.add_argument("--faces", default=settings.faces_dir,
                     help="labelled face set (default: FACES_DIR)")
    sim.add_argument("--seed", type=int, default=settings.seed, help="seed (default %(default)s)")
    sim.add_argument("--frames", action="store_true",
                     help="photos are 1280x720 checkout-camera frames with the customer's face "
                     "somewhere in them (docs/frames.md), not face crops")
    sim.add_argument("--camera-fault", metavar="STORE:LANE:KIND",
                     help="degrade one lane's camera: KIND blur, dark, glare or tilt (e.g. "
                     "S001:2:blur), to test the drift alarms")
    sim.add_argument("--json", action="store_true", help="print the result as JSON")
    sim.set_defaults(handler=_simulate)

    score = subparsers.add_parser(
        "score", help="Spark job 1: score a day's photos with the production model",
        description="spark-submit jobs/daily/score_photos.py: decode the day's photos, predict ages, "
        "replace the day's photo_scores and photo_quarantine partitions.",
    )
    _common(score, settings, "score")
    score.set_defaults(handler=_score, job_actions=add_score_arguments(score, settings))

    rep = subparsers.add_parser(
        "reports", help="Spark job 2: match receipts to photos and write the report tables",
        description="spark-submit jobs/daily/reports.py: quarantine bad receipt rows, match receipts "
        "to photos, write segment, recommendation, compliance and quality tables for the day.",
    )
    _common(rep, settings, "report")
    rep.set_defaults(handler=_reports, job_actions=add_reports_arguments(rep, settings))
    _add_server_command(subparsers, settings)


def _job_server(args: argparse.Namespace) -> int:
    """Run the job server in this process (`python -m jobs.daily.job_server`) until stopped."""
    import os

    argv = [sys.executable, "-m", "jobs.daily.job_server", "--host", args.host,
            "--port", str(args.port), "--master", args.master]
    if args.ready_file:
        argv += ["--ready-file", args.ready_file]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)  # the supervisor's signals reach the server itself
    return 1  # not reached


def _add_server_command(subparsers: argparse._SubParsersAction, settings: Settings) -> None:
    server = subparsers.add_parser(
        "job-server", help="a warm Spark application the daily jobs run in (--server URL)",
        description="Start one Spark application and run the score and reports jobs sent to it "
        "(`checkout-age score --server URL`, setting job_server) in it, one at a time, until "
        "SIGTERM: a day pays no JVM, session or worker start-up (docs/serving.md). Listens on "
        "HTTP without authentication: keep it on this host or a private network.",
    )
    server.add_argument("--host", default="127.0.0.1", help="address (default %(default)s)")
    server.add_argument("--port", type=int, default=JOB_SERVER_PORT,
                        help="port (default %(default)s; 0: any free one)")
    server.add_argument("--master", default=settings.spark_master,
                        help="Spark master (default %(default)s)")
    server.add_argument("--ready-file", help="write the server's URL here once it listens")
    server.set_defaults(handler=_job_server)


def _common(parser: argparse.ArgumentParser, settings: Settings, what: str) -> None:
    """The day, the data root, the Spark master and `--json`: what every job command takes."""
    add_day_arguments(parser, settings.data_root, what)
    parser.add_argument("--master", default=settings.spark_master,
                        help="Spark master (default %(default)s)")
    parser.add_argument("--server", default=settings.job_server or None, metavar="URL",
                        help="run the job in `checkout-age job-server` at URL (warm: no start-up "
                        "per day); its own application when the server does not answer "
                        "(default: setting job_server%s)"
                        % (f", {settings.job_server}" if settings.job_server else ", none"))
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
