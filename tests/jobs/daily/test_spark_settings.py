"""`build_spark` leaves the cluster's settings alone: spark-defaults.conf and --conf win over its
sizing defaults; only what the data contract needs is always set. Real spark-submit, real JVMs."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from jobs.daily.spark import REQUIRED_CONF, choose_conf, launch_env, tuning_defaults

pytestmark = pytest.mark.timeout(300)

VENV_BIN = Path(sys.executable).parent
KEYS = ["spark.sql.shuffle.partitions", "spark.sql.session.timeZone", "spark.driver.memory",
        "spark.sql.execution.arrow.maxRecordsPerBatch", "spark.ui.enabled",
        "spark.sql.parquet.outputTimestampType"]
APP = textwrap.dedent(f"""
    import json, sys
    from jobs.daily.spark import build_spark
    spark = build_spark("settings-test", sys.argv[1] if len(sys.argv) > 1 else None)
    conf = {{key: spark.conf.get(key) for key in {KEYS!r}}}
    conf["heap_mb"] = spark.sparkContext._jvm.java.lang.Runtime.getRuntime().maxMemory() >> 20
    print("CONF " + json.dumps(conf))
    spark.stop()
""")


def _run(tmp_path: Path, command: list[str], defaults: str | None) -> dict:
    env = launch_env()
    env.pop("SPARK_CONF_DIR", None)
    if defaults is not None:
        conf_dir = tmp_path / "conf"
        conf_dir.mkdir()
        (conf_dir / "spark-defaults.conf").write_text(defaults)
        env["SPARK_CONF_DIR"] = str(conf_dir)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240,
                          cwd=Path(__file__).resolve().parents[3])
    lines = [line for line in done.stdout.splitlines() if line.startswith("CONF ")]
    assert lines, done.stderr[-3000:]
    return json.loads(lines[-1][5:])


@pytest.fixture()
def app(tmp_path) -> Path:
    path = tmp_path / "app.py"
    path.write_text(APP)
    return path


def test_spark_submit_defaults_file_and_conf_win(tmp_path, app):
    defaults = ("spark.sql.shuffle.partitions   7\n"
                "spark.sql.session.timeZone     Europe/Moscow\n"
                "# spark.ui.enabled true\n")
    conf = _run(tmp_path, [str(VENV_BIN / "spark-submit"), "--master", "local[1]",
                           "--conf", "spark.sql.execution.arrow.maxRecordsPerBatch=99",
                           str(app)], defaults)
    assert conf["spark.sql.shuffle.partitions"] == "7"  # spark-defaults.conf
    assert conf["spark.sql.execution.arrow.maxRecordsPerBatch"] == "99"  # --conf
    assert conf["spark.ui.enabled"] == "false"  # unset by the cluster: our default
    assert conf["spark.sql.session.timeZone"] == "UTC"  # the contract's, whatever the cluster says
    assert conf["spark.sql.parquet.outputTimestampType"] == "TIMESTAMP_MICROS"


def test_a_process_that_starts_the_jvm_reads_the_defaults_file_too(tmp_path, app):
    defaults = "spark.driver.memory 700m\nspark.sql.shuffle.partitions 5\n"
    conf = _run(tmp_path, [sys.executable, str(app), "local[1]"], defaults)
    assert conf["spark.driver.memory"] == "700m"
    assert conf["heap_mb"] < 1000  # the JVM really started with it, not with our 2g
    assert conf["spark.sql.shuffle.partitions"] == "5"


def test_without_cluster_settings_the_defaults_apply(tmp_path, app):
    conf = _run(tmp_path, [sys.executable, str(app), "local[1]"], None)
    assert conf["spark.driver.memory"] == "2g" and conf["heap_mb"] > 1500
    assert conf["spark.sql.shuffle.partitions"] == "4"
    assert conf["spark.sql.execution.arrow.maxRecordsPerBatch"] == "256"


def test_choose_conf_fills_gaps_and_keeps_the_contract():
    defaults = tuning_defaults(shuffle_partitions=4)
    preset = {"spark.sql.shuffle.partitions": "64", "spark.sql.session.timeZone": "Asia/Tokyo"}
    chosen = choose_conf(defaults, preset, {"spark.ui.enabled": "true"})
    assert "spark.sql.shuffle.partitions" not in chosen
    assert chosen["spark.sql.session.timeZone"] == "UTC"
    assert chosen["spark.ui.enabled"] == "true"  # the caller's own choice wins
    assert {k: chosen[k] for k in REQUIRED_CONF} == REQUIRED_CONF
