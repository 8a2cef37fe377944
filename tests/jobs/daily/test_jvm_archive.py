"""The driver JVM's class-data archive: made whole, used by every launch, harmless when stale.
Real spark-submit, real JVMs (Java's own class-loading log says where each class came from)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from jobs.daily import jvm_archive
from jobs.daily.spark import DRIVER_JVM_OPTIONS, launch_env, spark_env

pytestmark = pytest.mark.timeout(600)

PROJECT = Path(__file__).resolve().parents[3]
VENV_BIN = Path(sys.executable).parent
SPARK_CLASS = "org.apache.spark.SparkContext"


def _workload(tmp_path: Path, name: str, options: str, *extra: str) -> subprocess.CompletedProcess:
    """The archive's own workload under spark-submit with `options` as the driver JVM's."""
    folder = tmp_path / name
    folder.mkdir()
    env = {**launch_env(), "SPARK_SUBMIT_OPTS": options}
    done = subprocess.run([str(VENV_BIN / "spark-submit"), "--master", "local[1]", *extra,
                           jvm_archive.__file__, "--workload", str(folder)],
                          env=env, capture_output=True, text=True, timeout=300, cwd=PROJECT)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return done


def _source_of(log: Path, class_name: str) -> str:
    line = next(line for line in log.read_text().splitlines() if f" {class_name} source:" in line)
    return line.split(" source: ", 1)[1]


def test_an_archive_is_built_whole_and_spark_starts_from_it(tmp_path: Path) -> None:
    archive = jvm_archive.build(sys.executable, target=tmp_path / "spark.jsa")
    assert archive.stat().st_size > 10 * 2**20
    assert [p.name for p in tmp_path.iterdir()] == ["spark.jsa"]  # no partial file left behind

    uses = f"-XX:SharedArchiveFile={archive} -Xlog:class+load=info:file={tmp_path / 'with.log'}"
    done = _workload(tmp_path, "with", f"{DRIVER_JVM_OPTIONS} {uses}")
    assert _source_of(tmp_path / "with.log", SPARK_CLASS) == "shared objects file (top)"
    assert "[warning]" not in done.stdout

    plain = f"-Xlog:class+load=info:file={tmp_path / 'without.log'}"
    _workload(tmp_path, "without", f"{DRIVER_JVM_OPTIONS} {plain}")
    assert _source_of(tmp_path / "without.log", SPARK_CLASS).endswith(".jar")

    # A class path the archive was not made for (here one more entry): the JVM says so on
    # stderr, loads classes as usual, and the job's stdout (its JSON result) stays clean.
    stale = f"{DRIVER_JVM_OPTIONS} -XX:SharedArchiveFile={archive} -Xlog:disable " \
            "-Xlog:all=warning:stderr"
    done = _workload(tmp_path, "stale", stale, "--driver-class-path", str(tmp_path))
    assert "Unable to use shared archive" in done.stderr
    assert "[warning]" not in done.stdout


def test_every_launch_names_the_venvs_archive_and_an_operators_options_win(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SPARK_SUBMIT_OPTS", raising=False)
    python = "/opt/jobs-venv/bin/python"
    options = spark_env(python)["SPARK_SUBMIT_OPTS"]
    assert options.startswith(DRIVER_JVM_OPTIONS)
    assert "-XX:SharedArchiveFile=/opt/jobs-venv/spark-cds.jsa" in options.split()
    assert "all=warning:stderr" in options  # JVM warnings never reach a job's stdout
    # A path SPARK_SUBMIT_OPTS would split in two: no archive rather than a broken option.
    assert spark_env("/opt/my venv/bin/python")["SPARK_SUBMIT_OPTS"] == DRIVER_JVM_OPTIONS
    monkeypatch.setenv("SPARK_SUBMIT_OPTS", "-Xmx1g")
    assert spark_env(python)["SPARK_SUBMIT_OPTS"] == "-Xmx1g"
