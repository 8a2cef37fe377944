"""`checkout-age job-server`: the daily jobs in one warm Spark application.

Days sent to the server (`--server URL`) come out exactly as their own applications write them,
its Python workers score day after day, a day it cannot do is answered with why while the server
goes on, and a command whose server is down or runs with other settings still does its day alone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from spark_jobs import untrained_registry

from jobs.daily.job_client import ServerUnavailable, server_health
from jobs.daily.job_server import JobRunner, job_settings, settings_differences
from jobs.daily.reports import REPORT_TABLES
from model.config import Settings

FIRST, MISSING, LAST = "2026-03-14", "2026-03-15", "2026-03-16"
CLI = Path(sys.executable).parent / "checkout-age"


def test_only_the_settings_a_job_reads_must_match():
    ours = job_settings(Settings())
    assert "faces_dir" not in ours and "train_profile" not in ours and "job_server" not in ours
    theirs = job_settings(Settings(faces_dir=Path("/elsewhere"), train_profile="quick"))
    assert settings_differences(ours, theirs) == []
    theirs = job_settings(Settings(match_window_s=11))
    assert settings_differences(ours, theirs) == ["match_window_s: '10' here vs '11'"]


def test_a_request_is_checked_before_any_job_runs():
    runner = JobRunner(spark=None, settings=Settings())  # no job reaches Spark below
    ours = job_settings(Settings())
    status, answer = runner.run({"job": "train", "argv": [], "settings": ours})
    assert status == 400 and "score" in answer["error"]
    status, answer = runner.run({"job": "score", "argv": ["--date", 3], "settings": ours})
    assert status == 400
    status, answer = runner.run({"job": "score", "argv": [], "settings": {**ours, "top_n": "3"}})
    assert status == 409 and "top_n: '10' here vs '3'" in answer["error"]
    runner.drain()  # stopping: the command is sent back to run its day alone
    status, answer = runner.run({"job": "score", "argv": [], "settings": ours})
    assert status == 503 and "stopping" in answer["error"] and runner.jobs_done == 0


def test_a_server_that_is_not_there_is_said_so():
    with pytest.raises(ServerUnavailable, match="not answering"):
        server_health("http://127.0.0.1:9")  # the discard port: nothing listens


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(CLI), *args, "--json"], capture_output=True, text=True,
                          timeout=600, check=False, env={**os.environ, **(env or {})})


def _result(done: subprocess.CompletedProcess) -> dict:
    return json.loads(done.stdout.strip().splitlines()[-1])


def _table(root: Path, table: str, day: str) -> pd.DataFrame:
    frame = pd.read_parquet(root / "reports" / table / f"date={day}")
    return frame.sort_values(list(frame.columns), ignore_index=True)


def _start_server(tmp: Path) -> tuple[subprocess.Popen, str, Path]:
    ready, log = tmp / "server.url", tmp / "server.log"
    server = subprocess.Popen(
        [str(CLI), "job-server", "--port", "0", "--master", "local[2]", "--ready-file",
         str(ready)], stdout=subprocess.DEVNULL, stderr=log.open("w"))
    deadline = time.monotonic() + 180
    while not ready.exists():
        assert server.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.5)
    return server, ready.read_text().strip(), log


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_days_sent_to_the_job_server_are_written_as_their_own_runs_write_them(
        faces_dir, tmp_path_factory):
    from jobs.simulator.landing import load_test_faces, write_day
    from jobs.simulator.simulate import simulate_day

    tmp = tmp_path_factory.mktemp("job-server")
    served, alone = tmp / "served", tmp / "alone"
    faces = load_test_faces(faces_dir, tmp_path_factory.mktemp("face-cache"))
    for number, day in enumerate((FIRST, LAST)):  # nothing lands for MISSING
        write_day(simulate_day(faces, day, 2, 20, 5 + number), str(served))
    shutil.copytree(served / "landing", alone / "landing")
    (tmp / "models").mkdir()
    registry = str(untrained_registry(tmp / "models" / "registry", artifact=True))

    server, url, server_log = _start_server(tmp)
    try:
        scored = {}
        for day in (FIRST, MISSING, LAST):
            done = _cli("score", "--date", day, "--root", str(served), "--registry", registry,
                        "--server", url)
            if day == MISSING:  # answered with why; the server goes on
                assert done.returncode != 0 and f"date={MISSING}" in done.stderr, done.stderr
                continue
            assert done.returncode == 0, done.stderr[-3000:]
            assert "own Spark application" not in done.stderr  # the server ran it
            assert "phases:" in done.stderr  # ... and its log came back with the result
            scored[day] = _result(done)
            assert scored[day]["photos_in"] == (scored[day]["photos_scored"]
                                                + scored[day]["photos_quarantined"]) > 0
        done = _cli("reports", "--date", FIRST, "--root", str(served), "--server", url)
        assert done.returncode == 0, done.stderr[-3000:]
        reported = _result(done)

        health = server_health(url)
        assert health["status"] == "ok" and health["jobs_done"] == 4 and not health["busy"]
        # One application: the Python workers that scored the first day scored the last too.
        pids = re.findall(r"score task: .* \(pid (\d+)\)", server_log.read_text())
        assert len(pids) == 4 and set(pids[2:]) <= set(pids[:2]), server_log.read_text()[-3000:]

        # Other settings than the server's: the day runs as its own application.
        done = _cli("score", "--date", FIRST, "--root", str(alone), "--registry", registry,
                    "--server", url, "--master", "local[2]",
                    env={"CHECKOUT_AGE_DRIFT_MIN_PHOTOS": "99"})
        assert done.returncode == 0, done.stderr[-3000:]
        assert "runs with other settings: drift_min_photos" in done.stderr
        assert "own Spark application" in done.stderr
        assert _result(done) == scored[FIRST]
        assert server_health(url)["jobs_done"] == 4
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=120) == 0, server_log.read_text()[-3000:]
    assert "job server stopped after 4 jobs" in server_log.read_text()

    # The server gone: the command does its day alone.
    done = _cli("reports", "--date", FIRST, "--root", str(alone), "--server", url,
                "--master", "local[2]")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "not answering" in done.stderr
    assert _result(done) == reported
    for table in ("photo_scores", "photo_quarantine", *REPORT_TABLES):
        pd.testing.assert_frame_equal(_table(served, table, FIRST), _table(alone, table, FIRST),
                                      check_exact=True, obj=f"{table} {FIRST}")
