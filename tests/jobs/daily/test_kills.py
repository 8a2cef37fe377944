"""Process faults with real processes: `kill -9` of both daily jobs, two runs of one day at once,
a model promoted while a run scores, a rerun of a purged day.

Every job runs as `spark-submit jobs/daily/<job>.py` (as Airflow runs it; in its own process group)
and is paused at a named point (`jobs.daily.pause_points`) so that the SIGKILL to the whole group lands exactly
there: while reading, with a partition staged, right after a swap, between two tables. A reader
thread reads every partition of the day the whole time; every read must equal the day's complete
partition before or after the runs, never a mix or a part. The tests build on each other, in
order (one simulated day, one registry).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from spark_jobs import submit_command, untrained_registry

from jobs.daily.ops import check_quality, purge_old_photos
from jobs.daily.pause_points import PAUSE_AT, PAUSE_DIR
from jobs.daily.reports import REPORT_TABLES
from jobs.daily.spark import launch_env

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # idle 2 cores: ~5 min in all

DAY = "2026-03-14"
SCORE_TABLES = ("photo_scores", "photo_quarantine")
TABLES = (*SCORE_TABLES, *REPORT_TABLES)


def _rows(path: Path) -> tuple:
    """A partition's rows, sorted, floats rounded (a rerun's predictions may differ in ulps)."""
    table = pq.read_table(path)
    rows = [tuple(round(v, 4) if isinstance(v, float) else v for v in row.values())
            for row in table.to_pylist()]
    return tuple(sorted(rows, key=repr))


class Reader(threading.Thread):
    """Reads every table's day partition in a loop; remembers what it saw."""

    def __init__(self, root: Path) -> None:
        super().__init__(daemon=True)
        self.root, self.stop = root, threading.Event()
        self.seen: dict[str, set[tuple]] = {t: set() for t in TABLES}
        self.missing: list[str] = []
        self.reads = 0

    def run(self) -> None:
        while not self.stop.is_set():
            for table in TABLES:
                path = self.root / "reports" / table / f"date={DAY}"
                try:
                    self.seen[table].add(_rows(path))
                    self.reads += 1
                except (OSError, pa.ArrowInvalid):  # a file listed before a swap, gone after it
                    if not path.is_dir():
                        self.missing.append(table)


@pytest.fixture(scope="module")
def site(faces_dir, tmp_path_factory):
    """A small simulated day, and a registry with v0001 (production) and v0002 (a different model:
    15 years older by construction)."""
    from jobs.daily.landing import load_test_faces, write_day
    from jobs.simulator.simulate import simulate_day

    home = tmp_path_factory.mktemp("kills")
    root = home / "data"
    faces = load_test_faces(faces_dir, tmp_path_factory.mktemp("face-cache"))
    write_day(simulate_day(faces, DAY, 1, 30, 5), str(root))
    registry = untrained_registry(home / "registry", versions=2)
    return {"root": root, "registry": registry, "pause": home / "pause", "logs": home / "logs",
            "reader": Reader(root), "snapshots": {}}


def _start(site: dict, job: str, *args: str, pause_at: str | None = None) -> subprocess.Popen:
    """Job `job` for DAY in its own process group, paused at `pause_at` if given."""
    site["pause"].mkdir(exist_ok=True)
    site["logs"].mkdir(exist_ok=True)
    for old in site["pause"].iterdir():
        old.unlink()
    env = {**launch_env(), PAUSE_DIR: str(site["pause"])}
    env.pop(PAUSE_AT, None)
    if pause_at:
        env[PAUSE_AT] = pause_at
    if job == "score":
        args = (*args, "--registry", str(site["registry"]))
    command = submit_command(job, "local[1]", "--date", DAY, "--root", str(site["root"]), *args)
    log = open(site["logs"] / f"{job}-{time.monotonic_ns()}.log", "w+")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    process.log = log
    return process


def _output(process: subprocess.Popen) -> str:
    process.log.seek(0)
    return process.log.read()


def _finish(process: subprocess.Popen, timeout: float = 400) -> int:
    return process.wait(timeout=timeout)


def _wait_paused(site: dict, process: subprocess.Popen, point: str, timeout: float = 400) -> None:
    marker = site["pause"] / f"{point.replace(':', '-')}.reached"
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if process.poll() is not None:
            pytest.fail(f"job ended ({process.returncode}) before {point}:\n"
                        f"{_output(process)[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"job did not reach {point} in {timeout} s")
        time.sleep(0.2)


def _resume(site: dict, point: str) -> None:
    (site["pause"] / f"{point.replace(':', '-')}.resume").touch()


def _kill_at(site: dict, job: str, point: str, *args: str) -> None:
    """Run `job`, SIGKILL its whole process tree at `point`."""
    process = _start(site, job, *args, pause_at=point)
    _wait_paused(site, process, point)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)


def _state(site: dict, tables: tuple[str, ...]) -> dict[str, tuple]:
    return {t: _rows(site["root"] / "reports" / t / f"date={DAY}") for t in tables}


def _debris(site: dict) -> list[str]:
    return sorted(p.name for p in (site["root"] / "reports").glob("*/_*"))


def test_a_second_run_of_the_day_is_refused_and_a_promotion_mid_run_is_not_seen(site):
    """Run 1 pins `production` (v0001) and pauses before it scores; meanwhile v0002 is promoted
    and a second run of the same day is started: it fails naming the first. Run 1 then finishes
    with v0001, the version it pinned (its ages are checked against v0002's below)."""
    from model.lifecycle.registry import ModelRegistry

    first = _start(site, "score", "--model", "production", pause_at="score:read")
    _wait_paused(site, first, "score:read")
    promotion = ModelRegistry(site["registry"]).promote("v0002", max_mae=100.0, tolerance=100.0)
    assert promotion.promoted, promotion.reason
    second = _start(site, "score", "--model", "production")
    assert _finish(second) != 0
    assert f"day {DAY} is being processed by another run (score_photos, pid" in _output(second)
    _resume(site, "score:read")
    assert _finish(first) == 0, _output(first)[-3000:]
    scores = pq.read_table(site["root"] / "reports" / "photo_scores" / f"date={DAY}").to_pandas()
    assert set(scores.model_version) == {"v0001"}
    site["v0001_ages"] = scores.set_index("photo_id").age_pred_years

    # Baseline of the kill tests: these v0001 scores, reports with challenge age 25.
    assert _finish(_start(site, "reports", "--challenge-age", "25")) == 0
    site["snapshots"]["before"] = _state(site, TABLES)
    site["reader"].start()


@pytest.mark.parametrize("point, expect_new", [
    ("score:read", ()),
    ("staged:photo_scores", ()),
    ("written:photo_scores", ("photo_scores",)),  # between the job's two tables
])
def test_kill_the_score_job(site, point, expect_new):
    before = site["snapshots"]["before"]
    _kill_at(site, "score", point, "--model", "v0002")
    state = _state(site, SCORE_TABLES)
    for table in SCORE_TABLES:
        assert (state[table] != before[table]) == (table in expect_new), table
    scores = pq.read_table(site["root"] / "reports" / "photo_scores" / f"date={DAY}")
    assert set(scores.column("model_version").to_pylist()) == (
        {"v0002"} if expect_new else {"v0001"})
    if point.startswith("staged:"):
        assert any(name.startswith("_tmp-") for name in _debris(site))  # killed mid-write


def test_the_next_score_run_heals_the_day(site):
    assert _finish(_start(site, "score", "--model", "v0002")) == 0
    assert _debris(site) == []
    scores = pq.read_table(site["root"] / "reports" / "photo_scores" / f"date={DAY}").to_pandas()
    assert set(scores.model_version) == {"v0002"}
    # v0002 = v0001 + 15 years: the promotion mid-run really left run 1 on v0001's weights.
    shift = scores.set_index("photo_id").age_pred_years - site["v0001_ages"]
    assert len(shift) and (shift.abs() > 1.0).all()


@pytest.mark.parametrize("point, expect_new", [
    ("swapped:receipt_ages", ("receipt_quarantine", "product_quarantine", "receipt_ages")),
    ("written:compliance", ("receipt_quarantine", "product_quarantine", "receipt_ages",
                            "segment_category", "recommendations", "compliance")),
])
def test_kill_the_reports_job(site, point, expect_new):
    before = site["snapshots"]["before"]
    _kill_at(site, "reports", point, "--challenge-age", "30")
    state = _state(site, REPORT_TABLES)
    # Tables whose content depends on the challenge age show which run wrote them.
    assert (state["compliance"] != before["compliance"]) == ("compliance" in expect_new)
    assert state["run_quality"] == before["run_quality"]
    if point.startswith("swapped:"):
        assert any(name.startswith("_tmp-") for name in _debris(site))  # the old one, undeleted


def test_the_next_reports_run_heals_the_day_and_readers_saw_only_whole_partitions(site):
    assert _finish(_start(site, "reports", "--challenge-age", "30")) == 0
    assert _debris(site) == []
    after = _state(site, TABLES)
    before = site["snapshots"]["before"]
    assert after["run_quality"] != before["run_quality"]  # challenge_age 30 now
    reader = site["reader"]
    reader.stop.set()
    reader.join(timeout=60)
    assert reader.reads > 100 and reader.missing == []
    for table in TABLES:
        assert reader.seen[table] <= {before[table], after[table]}, table
    verdict = check_quality(str(site["root"]), DAY, min_match_rate=0.0)
    assert verdict.ok, verdict.problems


def test_a_purged_day_is_refused_and_its_reports_stay(site):
    before = _state(site, TABLES)
    _, purged = purge_old_photos(str(site["root"]), "2026-05-01", keep_days=30)
    assert [day.date for day in purged] == [DAY]
    assert not (site["root"] / "landing" / f"date={DAY}" / "photos").exists()
    score = _start(site, "score", "--model", "v0002")
    assert _finish(score) != 0
    assert "its photos were deleted by retention" in _output(score)
    assert _finish(_start(site, "reports", "--challenge-age", "30")) == 0  # CSVs are still there
    assert _state(site, TABLES) == before
