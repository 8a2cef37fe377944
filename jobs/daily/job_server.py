"""A Spark application that outlives a day: the daily jobs run in it, warm.

    <venv>/bin/python -m jobs.daily.job_server --master 'local[*]' --port 15050

(`checkout-age job-server` runs this; the server is the Python process that starts Spark's JVM,
so a supervisor's SIGTERM reaches it and it stops Spark before it exits.) A day run as its own application pays the
JVM, the session, the Python workers' start-up and Spark's first stages every time: about
half of a 1,200-photo day's wall time (docs/serving.md). The job server is one application
that keeps all of that and runs `score` and `reports` requests in it, one at a time, each
exactly as its spark-submit application would (`score_photos.run_job`, `reports.run_job`):
the same day locks, partitions replaced atomically, the same result.

`checkout-age score --server URL` (setting `job_server`) sends the day here. Where the server
does not answer, or runs with other settings than the command (another registry, other
limits), the command runs the day as its own application, with a warning: a day is never
skipped because the server is down.

HTTP on 127.0.0.1 by default (no authentication: keep it on the host or a private network),
JSON both ways:
- `GET /health`: `{"status": "ok", "application_id", "master", "busy", "jobs_done", ...}`.
- `POST /jobs` `{"job": "score" | "reports", "argv": [...], "settings": {...}}`: the job's
  `{"exit_status", "result", "error", "log"}`; 409 when `settings` are not the server's.

A job that fails with a Spark error answers exit status 1; a server whose Spark context has
stopped exits (status 1) for its supervisor to restart it. SIGTERM or SIGINT: new jobs are
refused (their commands run alone), the running one finishes, then Spark stops (status 0).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

from jobs.daily.arguments import JOB_SERVER_PORT
from model.config import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger("jobs.daily.job_server")

# Settings a daily job never reads (training, the gate, where jobs are sent): a server started
# with other values of these still runs the command's days as its own application would.
NOT_JOB_SETTINGS = frozenset({
    "faces_dir", "train_profile", "image_size", "backbone", "batch_size", "train_max_minutes",
    "gate_max_mae", "gate_tolerance", "spark_master", "job_server",
})
MAX_REQUEST_BYTES = 1 << 20


def job_settings(settings: Settings) -> dict[str, str]:
    """The settings that decide what a daily job writes, as strings (compared by the server)."""
    return {name: str(value) for name, value in sorted(asdict(settings).items())
            if name not in NOT_JOB_SETTINGS}


def settings_differences(ours: dict[str, str], theirs: dict[str, str]) -> list[str]:
    """`name: server value vs command value` for each job setting that differs."""
    return [f"{name}: {ours.get(name)!r} here vs {theirs.get(name)!r}"
            for name in sorted(set(ours) | set(theirs)) if ours.get(name) != theirs.get(name)]


def _score(spark: SparkSession, argv: list[str]) -> dict:
    from jobs.daily import score_photos

    return score_photos.run_job(score_photos.parse_args(argv), lambda: spark)


def _reports(spark: SparkSession, argv: list[str]) -> dict:
    from jobs.daily import reports

    return reports.run_job(reports.parse_args(argv), lambda: spark)


JOBS: dict[str, Callable[[SparkSession, list[str]], dict]] = {"score": _score, "reports": _reports}


class JobRunner:
    """Runs the jobs of requests in one Spark session, one at a time, with each job's log."""

    def __init__(self, spark: SparkSession, settings: Settings) -> None:
        self.spark = spark
        self.settings = job_settings(settings)
        self.started = time.time()
        self.jobs_done = 0
        self.closing = False
        self._one_at_a_time = threading.Lock()

    def health(self) -> dict:
        """What `GET /health` answers."""
        context = self.spark.sparkContext
        return {"status": "ok" if self.alive() else "stopped",
                "application_id": context.applicationId, "master": context.master,
                "busy": self._one_at_a_time.locked(), "jobs_done": self.jobs_done,
                "up_s": round(time.time() - self.started, 1), "settings": self.settings}

    def alive(self) -> bool:
        """False once the Spark context has stopped (the JVM died or was shut down)."""
        try:
            return not self.spark.sparkContext._jsc.sc().isStopped()
        except Exception:  # noqa: BLE001 - a dead gateway raises whatever py4j raises
            return False

    def run(self, request: dict) -> tuple[HTTPStatus, dict]:
        """A request's job, run when the one before it is done: (HTTP status, answer)."""
        job, argv = request.get("job"), request.get("argv")
        if job not in JOBS or not isinstance(argv, list) or not all(
                isinstance(arg, str) for arg in argv):
            return HTTPStatus.BAD_REQUEST, {
                "error": f"a job request is {{'job': one of {sorted(JOBS)}, 'argv': [str, ...]}}"}
        if self.closing:  # the command runs its day alone
            return HTTPStatus.SERVICE_UNAVAILABLE, {"error": "the job server is stopping"}
        differences = settings_differences(self.settings, request.get("settings") or {})
        if differences:
            return HTTPStatus.CONFLICT, {"error": "the job server runs with other settings: "
                                         + "; ".join(differences)}
        with self._one_at_a_time, _captured_log() as captured:
            log.info("%s %s", job, " ".join(argv))
            answer = _run_job(JOBS[job], self.spark, argv)
            self.jobs_done += 1
        answer["log"] = captured.getvalue()
        return HTTPStatus.OK, answer

    def drain(self) -> None:
        """Refuse new jobs and wait for the running one (and those already waiting) to end."""
        self.closing = True
        with self._one_at_a_time:
            pass


def _run_job(job: Callable[[SparkSession, list[str]], dict], spark: SparkSession,
             argv: list[str]) -> dict:
    """A job's answer: exit status as its spark-submit application's (0, 2 for a day it could
    not do, 1 for anything else), the result, the error."""
    from model.errors import UserError

    try:
        result = job(spark, argv)
    except UserError as exc:
        log.error("%s", exc)
        return {"exit_status": 2, "result": None, "error": str(exc)}
    except SystemExit as exc:  # argparse refusing the arguments
        return {"exit_status": 2, "result": None, "error": f"bad job arguments (exit {exc.code})"}
    except Exception as exc:  # noqa: BLE001 - a Spark failure fails this job, not the server
        log.exception("job failed")
        return {"exit_status": 1, "result": None, "error": f"{type(exc).__name__}: {exc}"}
    return {"exit_status": 2 if result.get("failed") else 0, "result": result, "error": None}


class _captured_log:  # noqa: N801 - used as a context manager, named as one
    """The root logger's records while a job runs, also kept for its answer."""

    def __enter__(self) -> io.StringIO:
        self.text = io.StringIO()
        self.handler = logging.StreamHandler(self.text)
        self.handler.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger().addHandler(self.handler)
        return self.text

    def __exit__(self, *exc: object) -> None:
        logging.getLogger().removeHandler(self.handler)


def make_handler(runner: JobRunner, stop: Callable[[], None]) -> type[BaseHTTPRequestHandler]:
    """The HTTP handler class of a server around `runner`; `stop()` when Spark has died."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib's name
            log.info("%s %s", self.address_string(), format % args)

        def _answer(self, status: HTTPStatus, body: dict) -> None:
            data = json.dumps(body, sort_keys=True, default=str).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path != "/health":
                self._answer(HTTPStatus.NOT_FOUND, {"error": f"no {self.path}: GET /health"})
                return
            health = runner.health()
            self._answer(HTTPStatus.OK if health["status"] == "ok"
                         else HTTPStatus.SERVICE_UNAVAILABLE, health)

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            if self.path != "/jobs":
                self._answer(HTTPStatus.NOT_FOUND, {"error": f"no {self.path}: POST /jobs"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= MAX_REQUEST_BYTES:
                self._answer(HTTPStatus.BAD_REQUEST, {"error": "a JSON body of at most 1 MiB"})
                return
            try:
                request = json.loads(self.rfile.read(length))
            except ValueError as exc:
                self._answer(HTTPStatus.BAD_REQUEST, {"error": f"not JSON: {exc}"})
                return
            status, answer = runner.run(request if isinstance(request, dict) else {})
            self._answer(status, answer)
            if not runner.alive():
                log.error("the Spark context has stopped: the job server exits")
                stop()

    return Handler


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The server's arguments."""
    parser = argparse.ArgumentParser(prog="job_server.py", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default %(default)s: this host only)")
    parser.add_argument("--port", type=int, default=JOB_SERVER_PORT,
                        help="port (default %(default)s; 0: any free one, printed)")
    parser.add_argument("--master", default=None,
                        help="Spark master (default: setting spark_master)")
    parser.add_argument("--ready-file", help="write the server's URL here once it listens")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Start the session, serve until SIGTERM/SIGINT, stop Spark."""
    from jobs.daily.spark import build_spark
    from model.config import load_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    settings = load_settings()
    spark = build_spark("checkout-age-job-server", args.master or settings.spark_master)
    runner = JobRunner(spark, settings)
    server = ThreadingHTTPServer((args.host, args.port), None)  # handler set below
    died = threading.Event()

    def stop(crashed: bool = True) -> None:
        if crashed:
            died.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    server.RequestHandlerClass = make_handler(runner, stop)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop(crashed=False))
    url = f"http://{args.host}:{server.server_address[1]}"
    log.info("job server %s on %s, Spark application %s", url, spark.sparkContext.master,
             spark.sparkContext.applicationId)
    if args.ready_file:  # whole or absent: written aside, then renamed
        aside = f"{args.ready_file}.part"
        with open(aside, "w", encoding="utf-8") as handle:
            handle.write(url + "\n")
        os.replace(aside, args.ready_file)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        if not died.is_set():
            runner.drain()  # a job that is running ends as it would have; then Spark stops
        spark.stop()
    log.info("job server stopped after %d jobs", runner.jobs_done)
    return 1 if died.is_set() else 0


if __name__ == "__main__":
    # Re-enter through the package module (`python -m` runs this file as __main__).
    from jobs.daily.job_server import main as package_main

    sys.exit(package_main())
