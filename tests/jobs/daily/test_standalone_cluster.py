"""Both daily jobs on a real Spark standalone cluster (master + worker from the jobs venv's Spark,
loopback only) give exactly the report tables of a `local[*]` run of the same day."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from local_services import SparkStandalone
from spark_jobs import submit_command, untrained_registry

from jobs.daily.reports import REPORT_TABLES
from jobs.daily.spark import launch_env

# About 3 minutes on 2 idle cores; the limit only bounds a hung run on a busy machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

DAY = "2026-03-14"
TABLES = ("photo_scores", "photo_quarantine", *REPORT_TABLES)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A master and one worker (2 cores, 2 GB) on loopback, stopped by PID."""
    import pyspark

    spark_class = Path(pyspark.__file__).parent / "bin" / "spark-class"
    standalone = SparkStandalone(tmp_path_factory.mktemp("standalone"), spark_class, launch_env())
    try:
        yield standalone.start()
    finally:
        standalone.stop()


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
    from jobs.simulator.landing import load_test_faces, write_day
    from jobs.simulator.simulate import simulate_day

    local, remote = (tmp_path_factory.mktemp(name) for name in ("local", "cluster"))
    faces = load_test_faces(faces_dir, tmp_path_factory.mktemp("face-cache"))
    write_day(simulate_day(faces, DAY, 2, 30, 3), str(local))
    shutil.copytree(local / "landing", remote / "landing")

    registry = untrained_registry(tmp_path_factory.mktemp("models") / "registry", artifact=True)
    _run_day(remote, cluster.master, registry)
    _run_day(local, "local[*]", registry)

    assert sorted(cluster.completed_apps()) == [
        "checkout-age-reports", "checkout-age-score"]  # both really ran on the cluster
    for table in TABLES:
        pd.testing.assert_frame_equal(_sorted(remote, table), _sorted(local, table),
                                      check_exact=True, obj=table)
    assert len(_sorted(local, "photo_scores")) > 0
    assert sorted(os.listdir(remote / "reports")) == sorted(os.listdir(local / "reports"))
