"""Benchmark: the score job's fixed cost and its cost per photo, from days of growing size.

A chain's day is hundreds of thousands of photos; a test day is 1,200. The whole-job rate of a
small day is mostly Spark's and the driver's start, so this bench runs the serving path
(`checkout-age score`, spark-submit, `local[2]`, the version's OpenVINO artifact and YuNet) on
simulated days of several sizes, alternating the sizes, and fits wall = fixed + n x per photo
(least squares over every run) for frames and for face crops. The per-photo wall is the rate a
large day runs at; the fixed part is what a day pays once. Also per job: core-seconds by
process (`bench_score_paths.TreeUsage`) and the Python workers' own split of their CPU (the
job's `score task:` lines: scoring against start-up and hand-over).

Results: bench/results/bench_score_scale.json, with the load average (the machine is shared).

    .venv/bin/python bench/bench_score_scale.py --model v0002 --registry var/mlflow --compare-pinning
    .venv/bin/python bench/bench_score_scale.py --model v0001 --registry var/mlflow \
        --compare-version-id --out bench/results/bench_score_scale-pin.json
    .venv/bin/python bench/bench_score_scale.py --model v0001 --registry var/mlflow \
        --compare-yuface --out bench/results/bench_score_scale-detector.json
    .venv/bin/python bench/bench_score_scale.py --model v0001 --registry var/mlflow \
        --compare-batch-size 64 --out bench/results/bench_score_scale-batch.json
    .venv/bin/python bench/bench_score_scale.py --model v0001 --registry var/mlflow --sizes 1200 \
        2400 --compare-commit 18eeecb --shuffle-bytes --out bench/results/bench_score_scale-scan.json
    .venv/bin/python bench/bench_score_scale.py --model v0001 --registry var/mlflow --sizes 1200 \
        2400 --compare-no-bytecode --out bench/results/bench_score_scale-bytecode.json
    .venv/bin/python bench/bench_score_scale.py --sizes 120 240 --repeats 1 --quick
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import NamedTuple

import numpy as np

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from bench.bench_score_paths import CLI, DAY, SCORE_GOALS, TreeUsage  # noqa: E402
from bench.run_record import progress, publish, run_record  # noqa: E402

RESULTS = PROJECT / "bench" / "results" / "bench_score_scale.json"
_TASK_LINE = re.compile(r"score task: (\d+) photos, scoring ([\d.]+) core-s .*the rest of the "
                        r"task ([\d.]+), the worker before it ([\d.]+)")
_SCORED_IN = re.compile(r"decoded and scored in ([\d.]+) s")
_PHASE = re.compile(r"(\w+) ([\d.]+) s")


def job(root: Path, registry: str, model_ref: str, env: dict,
        event_dir: Path | None = None) -> dict:
    """`checkout-age score` once on `root`'s day: wall, core-s by process, workers' split.

    With `event_dir` (a new folder), Spark's event log goes there and the result also says how
    many bytes the job's shuffles wrote and read (`shuffle_mib`).
    """
    if event_dir is not None:
        event_dir.mkdir(parents=True)
        env = {**env, "SPARK_SUBMIT_OPTS": f"{env.get('SPARK_SUBMIT_OPTS', '')} "
               f"-Dspark.eventLog.enabled=true -Dspark.eventLog.compress=false "
               f"-Dspark.eventLog.dir={event_dir.as_uri()}"}
    wall = time.perf_counter()
    with TreeUsage() as usage:
        done = subprocess.run([str(CLI), "score", "--date", DAY, "--root", str(root), "--model",
                               model_ref, "--master", "local[2]", "--json"],
                              env={**env, "MODEL_REGISTRY": registry}, capture_output=True,
                              text=True)
    seconds = time.perf_counter() - wall
    if done.returncode != 0:
        raise RuntimeError(f"score failed on {root}:\n{done.stderr[-3000:]}")
    tasks = [tuple(float(v) for v in m.groups()) for m in _TASK_LINE.finditer(done.stderr)]
    scored_in = _SCORED_IN.search(done.stderr)
    photos = sum(int(t[0]) for t in tasks)
    scoring = sum(t[1] for t in tasks)
    return {"seconds": round(seconds, 2), "core_s": round(usage.core_seconds(), 1),
            "core_utilisation": round(usage.core_seconds() / (2 * seconds), 3),
            "core_s_by_process": usage.core_seconds_by_kind(),
            "scoring_stage_s": float(scored_in.group(1)) if scored_in else None,
            "driver_phases_s": _phases(done.stderr),
            "workers": {"photos": photos, "scoring_core_s": round(scoring, 1),
                        "scoring_core_s_per_photo": round(scoring / photos, 4) if photos else None,
                        "rest_of_tasks_core_s": round(sum(t[2] for t in tasks), 1),
                        "before_tasks_core_s": round(sum(t[3] for t in tasks), 1)},
            "python_worker_peak_rss_mib_max": usage.summary()["python_worker_peak_rss_mib_max"],
            **({"shuffle_mib": shuffle_mib(event_dir)} if event_dir is not None else {})}


def shuffle_mib(event_dir: Path) -> dict[str, float]:
    """MiB written and read by every shuffle of the one application logged in `event_dir`."""
    written = read = 0
    # Spark 4 logs an application as a folder of (rolled) event files.
    logs = sorted(path for path in event_dir.rglob("events_*") if path.is_file())
    if not logs:
        raise RuntimeError(f"no Spark event log under {event_dir}")
    for log in logs:
        with log.open(encoding="utf-8") as events:
            for line in events:
                if '"SparkListenerTaskEnd"' not in line:
                    continue
                metrics = json.loads(line).get("Task Metrics") or {}
                written += metrics.get("Shuffle Write Metrics", {}).get(
                    "Shuffle Bytes Written", 0)
                reads = metrics.get("Shuffle Read Metrics", {})
                read += reads.get("Remote Bytes Read", 0) + reads.get("Local Bytes Read", 0)
    return {"written": round(written / 2**20, 2), "read": round(read / 2**20, 2)}


@contextmanager
def commit_tree(rev: str, parent: Path) -> Iterator[Path]:
    """A detached git worktree of `rev` under `parent`: another commit's jobs, this venv.

    Unregistered from git on the way out, also when a job failed (else git keeps listing it).
    """
    tree = parent / f"commit-{rev}"
    subprocess.run(["git", "-C", str(PROJECT), "worktree", "add", "--detach", "--quiet",
                    str(tree), rev], check=True)
    try:
        yield tree
    finally:
        subprocess.run(["git", "-C", str(PROJECT), "worktree", "remove", "--force", str(tree)],
                       check=True)


def _tree_state() -> str:
    """This checkout's commit, "+ changes" when it has uncommitted ones."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(PROJECT), *args], capture_output=True,
                              text=True).stdout.strip()

    return git("rev-parse", "--short", "HEAD") + (
        " + changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def venv_bytecode() -> dict[str, int]:
    """How many of the jobs venv's modules have compiled bytecode (`make setup` compiles all)."""
    import sysconfig

    site = Path(sysconfig.get_paths()["purelib"])
    return {"py": sum(1 for _ in site.rglob("*.py")), "pyc": sum(1 for _ in site.rglob("*.pyc"))}


def phase_lines(log: str) -> list[dict[str, float]]:
    """Each of the job's `phases:` lines (`PhaseClock`, one a day) as {phase: seconds}."""
    return [{name: float(s) for name, s in _PHASE.findall(line.split(" phases: ", 1)[1])}
            for line in log.splitlines() if " phases: " in line]


def _phases(log: str) -> dict[str, float]:
    """The job's (first) `phases:` line as {phase: seconds}; {} without one."""
    return next(iter(phase_lines(log)), {})


def fit(runs: dict[int, list[dict]], key: str) -> dict:
    """Least squares `key` = fixed + n x per_photo over every run of every size."""
    sizes = np.array([n for n, rs in runs.items() for _ in rs], dtype=float)
    values = np.array([r[key] for rs in runs.values() for r in rs], dtype=float)
    per_photo, fixed = np.polyfit(sizes, values, 1)
    return {"fixed": round(float(fixed), 2), "per_photo": round(float(per_photo), 5)}


def summary(runs: dict[int, list[dict]]) -> dict:
    """Every run of one setting by day size, the fits and the rates they give."""
    photos = {size: rs[0]["workers"]["photos"] for size, rs in runs.items()}
    by_photos = {photos[size]: rs for size, rs in runs.items()}
    wall, core_s = fit(by_photos, "seconds"), fit(by_photos, "core_s")
    return {"runs": {str(n): rs for n, rs in by_photos.items()},
            "wall_s": wall, "core_s": core_s,
            "photos_per_s_marginal": round(1 / wall["per_photo"], 1),
            "photos_per_s_2_cores_by_cpu_marginal": round(2 / core_s["per_photo"], 1),
            "whole_job_photos_per_s": {str(n): round(n / min(r["seconds"] for r in rs), 1)
                                       for n, rs in by_photos.items()}}


class ScoreBench(NamedTuple):
    """What a score-job bench runs with: the store, the version and its pin, faces, env."""

    registry: str
    version: object  # model.lifecycle.registry.ModelVersion
    pin: str  # what the daily DAG's resolve_model gives the score job
    faces: object  # the simulator's test faces
    env: dict  # the jobs' launch environment


def add_bench_arguments(parser: argparse.ArgumentParser, results: Path) -> None:
    """`--registry`, `--model`, `--quick`, `--out`: what every score-job bench takes."""
    parser.add_argument("--registry", default=None, help="MLflow store (default: the settings')")
    parser.add_argument("--model", default="production",
                        help="a version with a serving artifact")
    parser.add_argument("--quick", action="store_true", help="no results file")
    parser.add_argument("--out", default=str(results))


def score_bench(registry_arg: str | None, model_ref: str) -> ScoreBench:
    """Resolve `model_ref` (it must have a serving artifact), load the test faces."""
    from jobs.daily.spark import launch_env
    from jobs.simulator.landing import load_test_faces
    from model.config import load_settings
    from model.lifecycle.registry import ModelRegistry
    from model.serving.artifact import read_artifact

    settings = load_settings()
    registry = str(registry_arg or settings.registry_store)
    models = ModelRegistry(registry, cache_dir=settings.cache_dir / "models")
    version = models.resolve(model_ref)
    if version.path is None or read_artifact(version.path) is None:
        raise SystemExit(f"{version.version} has no serving artifact: publish it first")
    faces_dir = settings.faces_dir or PROJECT.parent / "shared" / "faces"
    faces = load_test_faces(Path(faces_dir), settings.cache_dir)
    return ScoreBench(registry, version, models.pin(version.version), faces,
                      {**launch_env(), "TF_CPP_MIN_LOG_LEVEL": "2"})


# The on/off flags: each compares one more setting with the default, or adds a figure.
_SWITCHES = (
    ("--compare-pinning", "also run with OpenVINO's thread pinning on (the old default)"),
    ("--compare-version-id", "also run with the model named by its version id (the driver asks "
                             "MLflow, as before) instead of the daily DAG's pin"),
    ("--compare-jvm-archive", "also run the driver JVM without the venv's class-data archive"),
    ("--compare-yuface", "also run YuNet on yuface's own code instead of OpenVINO (frames days "
                         "only: crops are not detected)"),
    ("--shuffle-bytes", "log Spark's events and report each job's shuffle MiB"),
    ("--compare-no-bytecode", "also run every Python process without the venv's compiled "
                              "bytecode (an empty PYTHONPYCACHEPREFIX, nothing written: a venv "
                              "set up without it where nothing may write it)"),
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_bench_arguments(parser, RESULTS)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1200, 4800],
                        help="photos per day (about; the simulator's faults remove some)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each size and kind")
    for flag, text in _SWITCHES:
        parser.add_argument(flag, action="store_true", help=text)
    parser.add_argument("--compare-commit", default=None, metavar="REV",
                        help="also run commit REV's jobs (a git worktree on PYTHONPATH, this "
                             "venv): a code change against the code before it")
    parser.add_argument("--compare-batch-size", type=int, default=None, metavar="N",
                        help="also run with N faces per age-model call (the setting's default "
                             "against N, alternating)")
    args = parser.parse_args()
    started, load_before = time.time(), os.getloadavg()

    from jobs.daily.spark import DRIVER_JVM_OPTIONS
    from jobs.simulator.landing import write_day
    from jobs.simulator.simulate import simulate_day
    from model.config import load_settings

    registry, version, pin, faces, env = score_bench(args.registry, args.model)
    result: dict = {"model": version.version, "model_ref": pin, "sizes": args.sizes,
                    "image_size": version.image_size,
                    "score_batch_size": load_settings().score_batch_size, "kinds": {}}
    # Each compared setting: its environment changes and the model reference the job gets.
    settings_by_label = {"default": ({}, pin)}
    if args.compare_pinning:
        settings_by_label["openvino_cpu_pinning"] = (
            {"CHECKOUT_AGE_SERVING_CPU_PINNING": "true"}, pin)
    if args.compare_version_id:
        settings_by_label["model_by_version_id"] = ({}, version.version)
    if args.compare_jvm_archive:
        settings_by_label["no_jvm_archive"] = ({"SPARK_SUBMIT_OPTS": DRIVER_JVM_OPTIONS}, pin)
    if args.compare_yuface:
        settings_by_label["yunet_on_yuface"] = ({"CHECKOUT_AGE_YUNET_RUNTIME": "yuface"}, pin)
    if args.compare_batch_size:
        settings_by_label[f"batch_{args.compare_batch_size}"] = (
            {"CHECKOUT_AGE_SCORE_BATCH_SIZE": str(args.compare_batch_size)}, pin)
    frames_only = {"yunet_on_yuface"}  # settings that change nothing on a crops day
    with tempfile.TemporaryDirectory(prefix="bench-score-scale-") as tmp_name, ExitStack() as stack:
        if args.compare_commit:
            rev = subprocess.run(["git", "-C", str(PROJECT), "rev-parse", "--short",
                                  args.compare_commit], check=True, capture_output=True,
                                 text=True).stdout.strip()
            tree = stack.enter_context(commit_tree(rev, Path(tmp_name)))
            settings_by_label[f"commit_{rev}"] = ({"PYTHONPATH": str(tree)}, pin)
        if args.compare_no_bytecode:
            empty = Path(tmp_name) / "no-bytecode"
            empty.mkdir()
            settings_by_label["no_bytecode"] = (
                {"PYTHONPYCACHEPREFIX": str(empty), "PYTHONDONTWRITEBYTECODE": "1"}, pin)
        result["settings"] = {label: {"env": {k: v if k != "PYTHONPATH" else "<worktree>"
                                              for k, v in changes.items()}, "model": model_ref}
                              for label, (changes, model_ref) in settings_by_label.items()}
        result["spark_submit_opts"] = env.get("SPARK_SUBMIT_OPTS")
        result["this_tree"] = _tree_state()
        result["venv_bytecode"] = venv_bytecode()
        roots = {}
        for kind, frames in (("frames", True), ("crops", False)):
            for size in args.sizes:
                progress(f"simulating a day of {size} {kind}")
                day = simulate_day(faces, DAY, 4, size // 4, seed=11, frames=frames)
                roots[kind, size] = Path(tmp_name) / f"{kind}-{size}"
                write_day(day, str(roots[kind, size]))
        for kind in ("frames", "crops"):
            compared = {label: setting for label, setting in settings_by_label.items()
                        if kind == "frames" or label not in frames_only}
            runs: dict[str, dict[int, list[dict]]] = {
                label: {size: [] for size in args.sizes} for label in compared}
            for _ in range(args.repeats):
                for size in args.sizes:  # alternating: every size and setting, same neighbours
                    for label, (changes, model_ref) in compared.items():
                        progress(f"score {size} {kind}, {label}")
                        events = (Path(tmp_name) / "events" / f"{kind}-{size}-{label}-"
                                  f"{len(runs[label][size])}" if args.shuffle_bytes else None)
                        runs[label][size].append(job(roots[kind, size], registry,
                                                     model_ref, {**env, **changes}, events))
            result["kinds"][kind] = {label: summary(by_size)
                                     for label, by_size in runs.items()}
        if args.compare_no_bytecode and any(empty.iterdir()):
            raise RuntimeError(f"bytecode was written under {empty}: not a run without it")
    result["goals"], result["run"] = SCORE_GOALS, run_record(started, load_before)
    publish(result, args.out, keep=not args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
