"""Both daily jobs on a real Spark standalone cluster (master + worker from the jobs venv's Spark,
loopback only) give exactly the report tables of a `local[*]` run of the same day."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from spark_jobs import submit_command, untrained_registry

from jobs.daily.reports import REPORT_TABLES
from jobs.daily.spark import launch_env

# About 3 minutes on 2 idle cores; the limit only bounds a hung run on a busy machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

DAY = "2026-03-14"
TABLES = ("photo_scores", "photo_quarantine", *REPORT_TABLES)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the daemon's own PID (spark-class execs the JVM), SIGKILL if it lingers."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def _alive_workers(ui_port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=5) as page:
            return int(json.load(page).get("aliveworkers", 0))
    except OSError:
        return 0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """(`spark://127.0.0.1:PORT`, web UI port): a master and one worker (2 cores, 2 GB),
    stopped by PID."""
    import pyspark

    home = tmp_path_factory.mktemp("standalone")
    spark_class = str(Path(pyspark.__file__).parent / "bin" / "spark-class")
    env = {**launch_env(), "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOG_DIR": str(home / "logs"),
           "SPARK_WORKER_DIR": str(home / "work"), "SPARK_NO_DAEMONIZE": "1"}
    port, ui_port = _free_port(), _free_port()
    processes = []
    try:
        processes.append(subprocess.Popen(
            [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
             "--port", str(port), "--webui-port", str(ui_port)],
            env=env, stdout=open(home / "master.log", "w"), stderr=subprocess.STDOUT))
        master = f"spark://127.0.0.1:{port}"
        processes.append(subprocess.Popen(
            [spark_class, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
             "--port", str(_free_port()), "--webui-port", str(_free_port()), "--cores", "2",
             "--memory", "2g", "--work-dir", str(home / "work"), master],
            env=env, stdout=open(home / "worker.log", "w"), stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 180
        while _alive_workers(ui_port) < 1:
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                logs = "".join((home / n).read_text()[-2000:] for n in ("master.log", "worker.log"))
                pytest.fail(f"standalone cluster did not start:\n{logs}")
            time.sleep(1)
        yield master, ui_port
    finally:
        for process in reversed(processes):
            _stop(process)


def _run_day(root: Path, master: str, registry: Path) -> None:
    for job, extra in (("score", ["--registry", str(registry), "--partitions", "1"]),
                       ("reports", [])):
        command = submit_command(job, master, "--date", DAY, "--root", str(root), *extra)
        done = subprocess.run(command, env=launch_env(), capture_output=True, text=True,
                              timeout=400)
        assert done.returncode == 0, f"{job} on {master}:\n{done.stderr[-3000:]}"
        if job == "score":  # the executors ran the version's serving artifact, not Keras
            assert '"serving": "artifact' in done.stdout, done.stdout[-2000:]


def _sorted(root: Path, table: str) -> pd.DataFrame:
    frame = pd.read_parquet(root / "reports" / table / f"date={DAY}")
    return frame.sort_values(list(frame.columns), ignore_index=True)


def test_a_standalone_cluster_writes_the_same_tables_as_local_mode(
        cluster, faces_dir, tmp_path_factory):
    from jobs.daily.landing import load_test_faces, write_day
    from jobs.simulator.simulate import simulate_day

    local, remote = (tmp_path_factory.mktemp(name) for name in ("local", "cluster"))
    faces = load_test_faces(faces_dir, tmp_path_factory.mktemp("face-cache"))
    write_day(simulate_day(faces, DAY, 2, 30, 3), str(local))
    shutil.copytree(local / "landing", remote / "landing")

    registry = untrained_registry(tmp_path_factory.mktemp("models") / "registry", artifact=True)
    master, ui_port = cluster
    _run_day(remote, master, registry)
    _run_day(local, "local[*]", registry)

    with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=10) as page:
        finished = json.load(page)["completedapps"]
    assert sorted(app["name"] for app in finished) == [
        "checkout-age-reports", "checkout-age-score"]  # both really ran on the cluster
    for table in TABLES:
        pd.testing.assert_frame_equal(_sorted(remote, table), _sorted(local, table),
                                      check_exact=True, obj=table)
    assert len(_sorted(local, "photo_scores")) > 0
    assert sorted(os.listdir(remote / "reports")) == sorted(os.listdir(local / "reports"))
