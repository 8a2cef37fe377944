"""Job 1: score one day's checkout photos with the production age model.

    <venv>/bin/spark-submit --master 'local[*]' jobs/daily/score_photos.py --date 2026-03-14 \
        --root var/data --registry var/mlflow --model production

(`--to 2026-04-13` scores every day from `--date` to it in the one application: a backfill
starts Spark, resolves the model and warms the workers once; `jobs.daily.day_range`.)

(`checkout-age score` builds exactly this command; Airflow's SparkSubmitOperator runs the same
file with the same arguments.) Reads `ROOT/landing/date=D/photos/**` with the `binaryFile`
source and `photos.csv`, decodes each photo, finds the customer's face in a frame
(`model.faces`: detect, choose, crop; a face crop is scored whole), predicts ages with
`predict_batch_udf` (the model is loaded once per Python worker, fed batches), and replaces the
day's `photo_scores` and `photo_quarantine` partitions. Photos in = scored + quarantined.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterator  # Iterator: resolved at runtime by pandas_udf
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from model.config import Settings  # plain values: no Keras or MLflow at import

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from model.evaluation.calibration import Calibration

log = logging.getLogger("jobs.daily.score_photos")

# The score job's file scan: what a photo file weighs besides its bytes, and the most bytes of
# photos (with those weights) one scoring task reads: about 1,000 photos.
SCAN_OPEN_COST_BYTES = 1 << 20
SCAN_SPLIT_MAX_BYTES = 1 << 30


def pixels_udf(size: int, limits: dict[str, int] | None = None):  # -> pandas UDF
    """Pandas UDF: (image bytes, crop) -> flat float32 pixels (size*size*3) as the model's input.

    `crop` is `face_udf`'s: [] scores the whole photo (a face crop), a face's numbers cut the
    customer's face out of the full-resolution frame (`model.faces.crop_from`), NULL means
    nothing to score (zero pixels; the row is quarantined anyway). An iterator UDF, like
    `predict_batch_udf`'s, so Spark chains the two in one Python worker:
    `predict(pixels(content, crop))` hands the arrays straight to the model without a round trip
    through the JVM (which cost more than the inference: bench/bench_jobs.py). The crop exists
    only in this worker's memory.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, FloatType

    limits = dict(limits or {})

    @F.pandas_udf(ArrayType(FloatType(), containsNull=False))
    def pixels(batches: Iterator[tuple[pd.Series, pd.Series]]) -> Iterator[pd.Series]:
        from model.serving.faces import crop_from
        from model.serving.images import ImageRejected, open_image

        blank = np.zeros(size * size * 3, dtype=np.float32)
        for content, crops in batches:
            out = []
            for data, crop in zip(content, crops, strict=True):
                flat = blank
                if data is not None and crop is not None:
                    try:
                        image = open_image(bytes(data), **limits)
                        flat = crop_from(image, crop, size).reshape(-1).astype(np.float32)
                    except ImageRejected:
                        pass
                out.append(flat)
            yield pd.Series(out)

    return pixels


FACE_STRUCT = (
    "reason string, detail string, faces_found int, face_x int, face_y int, face_w int, "
    "face_h int, face_confidence double, crop array<double>"
)


def face_udf(options: dict | None = None):  # -> pandas UDF
    """Pandas UDF: image bytes -> `model.faces.locate_photos` verdict (`FACE_STRUCT`).

    Decodes each photo (the decoder's checks), and for a frame runs the face detector (loaded
    once per Python worker) and picks the customer's face. Marked nondeterministic so Spark
    evaluates it exactly once per row: its result feeds both the crop and the output columns.
    `options`: `locate_photos` keywords (photo_format, crop_max_px, detect_width, ...).
    """
    from pyspark.sql import functions as F

    options = dict(options or {})

    @F.pandas_udf(FACE_STRUCT)
    def faces(batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
        from model.serving.faces import LOCATED_COLUMNS, locate_photos

        for content in batches:
            rows = locate_photos(list(content), **options)
            yield pd.DataFrame(rows, columns=list(LOCATED_COLUMNS)).astype(
                {"faces_found": "Int32", "face_x": "Int32", "face_y": "Int32",
                 "face_w": "Int32", "face_h": "Int32", "face_confidence": "float64"})

    return faces.asNondeterministic()


def age_udf(model_path: str, size: int, batch_size: int, flip_tta: bool = True):  # -> UDF
    """`predict_batch_udf` over flattened (size, size, 3) pixels -> predicted age (float)."""
    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql.types import FloatType

    def make_predict_fn():
        # Runs once per Python worker: the loaded model is cached there between batches.
        from model.serving.net import load_age_model
        from model.serving.predict import predict_ages

        model = load_age_model(model_path)

        def predict(pixels: np.ndarray) -> np.ndarray:
            return predict_ages(model, pixels, batch_size=len(pixels), flip_tta=flip_tta)

        return predict

    return predict_batch_udf(
        make_predict_fn,
        return_type=FloatType(),
        batch_size=batch_size,
        input_tensor_shapes=[[size, size, 3]],
    )


SERVED_STRUCT = FACE_STRUCT.rsplit(", crop", 1)[0] + ", age_pred_years float"


def serve_udf(options: dict, limits: dict[str, int] | None = None):  # -> pandas UDF
    """Pandas UDF: image bytes -> verdict, customer's face and age (`SERVED_STRUCT`), in one go.

    The serving path (`model.serving.score.score_contents`): decode at the detector's scale,
    detect, choose, crop at full resolution, predict with the version's artifact, all in one
    Python worker that loads the artifact and the detector once and never imports TensorFlow.
    `options`: `ServingOptions` fields. Nondeterministic, so it runs exactly once per row.
    """
    from pyspark.sql import functions as F

    options, limits = dict(options), dict(limits or {})

    @F.pandas_udf(SERVED_STRUCT)
    def serve(batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
        from model.serving.score import SCORED_COLUMNS, ServingOptions, score_contents

        serving = ServingOptions(**options)
        usage = TaskUsage()
        for content in batches:
            with usage.scoring(len(content)):
                rows = score_contents(list(content), serving, limits)
            yield pd.DataFrame(rows, columns=list(SCORED_COLUMNS)).astype(
                {"faces_found": "Int32", "face_x": "Int32", "face_y": "Int32",
                 "face_w": "Int32", "face_h": "Int32", "face_confidence": "float64",
                 "age_pred_years": "float32"})
        usage.report()

    return serve.asNondeterministic()


class TaskUsage:
    """CPU of one scoring task in its Python worker, for the worker's log (stderr).

    Splits the worker process's CPU into the scoring itself and the rest (start-up, imports,
    Arrow and pandas conversions), the figure that says where a slow job's time goes.
    """

    def __init__(self) -> None:
        self.photos = 0
        self.scoring_core_s = 0.0
        self.started_core_s = time.process_time()  # what the worker spent before this task

    @contextmanager
    def scoring(self, photos: int) -> Iterator[None]:
        """Count `photos` and the CPU of the block as scoring."""
        before = time.process_time()
        try:
            yield
        finally:
            self.scoring_core_s += time.process_time() - before
            self.photos += photos

    def report(self) -> None:
        """One line on the worker's stderr (the job's log in local mode, the executor's else)."""
        total = time.process_time()
        per_photo = self.scoring_core_s / self.photos if self.photos else 0.0
        sys.stderr.write(
            f"score task: {self.photos} photos, scoring {self.scoring_core_s:.1f} core-s "
            f"({per_photo:.4f} per photo), the rest of the task "
            f"{total - self.started_core_s - self.scoring_core_s:.1f}, the worker before it "
            f"{self.started_core_s:.1f} (pid {os.getpid()})\n")
        sys.stderr.flush()


class PhaseClock:
    """Wall seconds of the driver's phases, logged as one line at the end of a run.

    What a day pays once (the session, reading the inputs, writing) against the scoring
    itself: the split a small day's throughput turns on (docs/serving.md).
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def done(self, phase: str) -> float:
        """Close `phase` (the time since the previous one closed); its seconds."""
        now = time.perf_counter()
        self.seconds[phase] = round(now - self._last, 2)
        self._last = now
        return self.seconds[phase]

    def log(self) -> None:
        """`phases: session 1.4 s, inputs 2.2 s, ...` on the job's log."""
        log.info("phases: %s", ", ".join(f"{k} {v:.2f} s" for k, v in self.seconds.items()))


def score_files(files: DataFrame, serve) -> DataFrame:
    """Every photo file through the one-UDF serving path (`serve_udf`) in the task that reads it.

    photo_id, path, `_face` (`SERVED_STRUCT`). Scoring before the join with the metadata means
    the photos' bytes never cross a shuffle (a chain's day is tens of GB of JPEGs; the verdicts
    are a few dozen bytes each). The few files the metadata quarantines are scored for nothing.
    """
    from pyspark.sql import functions as F

    return files.select("photo_id", "path", serve(F.col("content")).alias("_face"))


def served_columns(inventory: DataFrame) -> DataFrame:
    """`score_inventory`'s output from `photo_inventory(score_files(...), meta, "_face")`."""
    from pyspark.sql import functions as F

    return inventory.select(
        "photo_id", "store_id", "lane_id", "captured_at",
        F.col("_face.age_pred_years").alias("age_pred_years"),
        F.coalesce("reason", "_face.reason").alias("reason"),
        F.coalesce("detail", "_face.detail").alias("detail"),
        *[F.col(f"_face.{name}").alias(name) for name in FACE_COLUMNS],
    )


def score_inventory(inventory: DataFrame, faces, pixels, predict) -> DataFrame:
    """Decode, locate and score every inventory row.

    reason = the metadata's, else the decoder's or the detector's (`face_udf`).

    Args:
        inventory: `jobs.daily.photos.photo_inventory` rows (content NULL when not to be decoded).
        faces, pixels, predict: the UDFs above (`face_udf`, `pixels_udf`, `age_udf`).
    """
    from pyspark.sql import functions as F

    located = inventory.select(
        "photo_id", "store_id", "lane_id", "captured_at", "reason", "detail", "content",
        faces(F.col("content")).alias("_face"),
    )
    checked = located.select(
        "photo_id", "store_id", "lane_id", "captured_at", "reason", "detail", "_face",
        predict(pixels(F.col("content"), F.col("_face.crop"))).alias("age_pred_years"),
    )
    return checked.select(
        "photo_id", "store_id", "lane_id", "captured_at", "age_pred_years",
        F.coalesce("reason", "_face.reason").alias("reason"),
        F.coalesce("detail", "_face.detail").alias("detail"),
        *[F.col(f"_face.{name}").alias(name) for name in FACE_COLUMNS],
    )


FACE_COLUMNS = ("faces_found", "face_x", "face_y", "face_w", "face_h", "face_confidence")


def _path_key(path: str) -> str:
    """`file:/x` and `file:///x` (Hadoop prints both) as one key."""
    return re.sub(r"^([A-Za-z][\w+.-]*):/+", r"\1:///", path)


def read_photo_files(spark: SparkSession, photos_dir: str) -> DataFrame:
    """Every file under the day's `photos/` folder: path, content (`read_photo_files_sized`)."""
    return read_photo_files_sized(spark, photos_dir)[0]


def read_photo_files_sized(spark: SparkSession, photos_dir: str) -> tuple[DataFrame, list[int]]:
    """Every file under the day's `photos/` folder (path, content), and the files' sizes.

    The binaryFile source silently skips zero-length files; they are found by comparing its
    file listing with the paths it reads (no content is read for that) and added with empty
    content, so they become `not_an_image` quarantine rows rather than lost photos. The sizes
    (bytes, of the files Spark reads) come from that same listing.
    """
    from jobs.daily.storage import path_exists

    if not path_exists(spark, photos_dir):
        return _local_files(spark, []), []
    reader = spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(photos_dir)
    listed = {_path_key(path): path for path in reader.inputFiles()}
    rows = reader.select("path", "length").collect()
    read = {_path_key(row.path) for row in rows}
    empty = [(listed[key], b"") for key in sorted(listed.keys() - read)]
    files = reader.select("path", "content")
    files = files.unionByName(_local_files(spark, empty)) if empty else files
    return files, [row.length for row in rows]


def _local_files(spark: SparkSession, rows: list[tuple[str, bytes]]) -> DataFrame:
    """(path, content) rows made on the driver, as a local table: from pandas through Arrow,
    not from a list, whose RDD needs Python workers to re-pickle it in every scan that reads it
    (two per day: they held both cores for 0.85 s before the scoring could start)."""
    return spark.createDataFrame(pd.DataFrame(rows, columns=["path", "content"]),
                                 "path string, content binary")


def scan_split_bytes(sizes: list[int], cores: int, open_cost: int,
                     most: int = SCAN_SPLIT_MAX_BYTES) -> int:
    """`spark.sql.files.maxPartitionBytes` that cuts a day's files into a multiple of `cores`
    even scan tasks (each file weighs its size plus `open_cost`, as Spark counts it).

    Spark packs files, largest first, into splits of min(this, the day's weight / cores): a
    2-core machine gets two tasks (and one of a file or two, as Spark's packing leaves it) up to
    `most` bytes each, and beyond that 4, 6, ..., never 3 with the third running alone.
    """
    weights = [size + open_cost for size in sizes]
    if not weights:
        return most
    total = sum(weights)
    tasks = cores * max(1, math.ceil(total / (cores * most)))
    return math.ceil(total / tasks) + max(weights)  # room for the file that closes a split


def run(spark: SparkSession, *, root: str, run_date: str, model_path: str, model_version: str,
        image_size: int, batch_size: int = Settings.score_batch_size,
        decode_limits: dict[str, int] | None = None, partitions: int | None = None,
        calibration: Calibration | None = None, face_options: dict | None = None,
        model_run_id: str | None = None, serving: dict | None = None,
        clock: PhaseClock | None = None) -> dict:
    """Score day `run_date` under `root`; replace its photo partitions; return the counts.

    `serving`: `model.serving.score.ServingOptions` fields when the version has a serving
    artifact (`serving_options_from`): one UDF per photo batch, no TensorFlow in the workers.
    None: the Keras path (MTCNN detector, `.keras` model; versions without an artifact).

    `face_options`: the Keras path's `model.faces.locate_photos` keywords (photo format,
    detector width, minimum face size, ...; `face_options_from(settings)`).

    `calibration` (the version's `calibration.json`) fills age_low, age_high and
    p_under_legal_age; without one (older versions) those columns are NULL. `model_run_id`
    (the MLflow run behind `model_version`) goes into every scored row. `clock` (the driver's)
    gets the phases `inputs`, `scoring` and `writes`.
    """
    from jobs.contract import PHOTO_QUARANTINE, PHOTO_SCORES
    from jobs.daily import photos
    from jobs.daily.csv_lines import read_csv_lines
    from jobs.daily.pause_points import pause_point
    from jobs.daily.spark import set_unless_configured
    from jobs.daily.storage import require_complete_day, require_photos_kept, write_partition

    clock = clock or PhaseClock()
    landing = require_complete_day(spark, root, run_date)
    require_photos_kept(spark, root, run_date)
    # Photos are ~5-150 KB and cost about the same to score whatever their size: Spark's
    # default 4 MB "open cost" per file would make one task per ~32 photos, their size alone
    # would give the task of the largest files too few photos. 1 MB: ~1,000 photos a GB.
    set_unless_configured(spark, "spark.sql.files.openCostInBytes", str(SCAN_OPEN_COST_BYTES))
    # A frame is ~100 KB and decodes to 2.7 MB: Arrow batches of 10,000 (the default) would
    # hand a worker a gigabyte at once. The UDFs work in smaller chunks inside a batch anyway.
    set_unless_configured(spark, "spark.sql.execution.arrow.maxRecordsPerBatch", "512")
    files, sizes = read_photo_files_sized(spark, f"{landing}/photos")
    files = photos.file_photo_ids(files)
    meta = photos.check_photo_metadata(
        read_csv_lines(spark, f"{landing}/photos.csv", photos.PHOTO_META_COLUMNS)
    )
    cores = spark.sparkContext.defaultParallelism
    if serving is not None:
        # One single-threaded Python worker per task does everything, in the file scan's own
        # tasks: as many as the cores, or a multiple (Spark's default 128 MB splits made 3-4
        # tasks of a 1,200-frame day on 2 cores, the last running alone).
        # In bytes, whatever unit a cluster wrote it in ("4m").
        open_cost = spark._jsparkSession.sessionState().conf().filesOpenCostInBytes()
        set_unless_configured(spark, "spark.sql.files.maxPartitionBytes",
                              str(scan_split_bytes(sizes, cores, open_cost)))
        if partitions:
            files = files.coalesce(partitions)
        scored = served_columns(photos.photo_inventory(
            score_files(files, serve_udf(
                {**serving, "size": image_size, "batch_size": batch_size}, decode_limits)),
            meta, "_face"))
    else:
        # One scoring task keeps two Python workers busy (decode + face detection, and decode +
        # crop + model with its own thread pool), so half as many tasks as cores.
        parts = partitions or max(1, cores // 2)
        inventory = photos.photo_inventory(files, meta).repartition(parts, "photo_id")
        scored = score_inventory(
            inventory,
            face_udf({**(face_options or {}), "limits": decode_limits}),
            pixels_udf(image_size, decode_limits),
            age_udf(model_path, image_size, batch_size),
        )
    scored = scored.cache()  # feeds three actions
    pause_point("score:read")
    try:
        # Count first: it fills the cache with full parallelism (the writes coalesce to one file,
        # which would otherwise pull the scoring itself into a single task).
        clock.done("inputs")  # the checks, the day's file listing and metadata, the plan
        by_reason = {
            row["reason"]: row["count"] for row in scored.groupBy("reason").count().collect()
        }
        log.info("decoded and scored in %.1f s", clock.done("scoring"))
        write_partition(photos.photo_scores(scored, model_version, calibration, model_run_id),
                        root, PHOTO_SCORES, run_date)
        write_partition(photos.photo_quarantine(scored), root, PHOTO_QUARANTINE, run_date)
        clock.done("writes")
    finally:
        scored.unpersist()
    counts = {"date": run_date, "model_version": model_version, "model_run_id": model_run_id,
              "calibrated": calibration is not None,
              "serving": "keras, mtcnn" if serving is None
              else f"artifact {serving['precision']}, {_detector_label(serving)}",
              **_photo_counts(by_reason)}
    log.info("scored %s: %s", run_date, counts)
    return counts


def _photo_counts(by_reason: dict[str | None, int]) -> dict:
    """photos_in / scored / quarantined and the reasons, from counts per reason (None = scored)."""
    reasons = {reason: count for reason, count in by_reason.items() if reason is not None}
    scored = by_reason.get(None, 0)
    return {"photos_in": scored + sum(reasons.values()), "photos_scored": scored,
            "photos_quarantined": sum(reasons.values()),
            "quarantine_reasons": dict(sorted(reasons.items()))}


def face_options_from(settings: Settings) -> dict:
    """`model.faces.locate_photos` keywords from the settings (photo format, detector, sizes)."""
    from model.serving.faces import PHOTO_FORMATS

    if settings.photo_format not in PHOTO_FORMATS:
        from model.errors import UserError

        raise UserError(f"CHECKOUT_AGE_PHOTO_FORMAT={settings.photo_format!r}: expected one of "
                        f"{', '.join(PHOTO_FORMATS)}")
    return {"photo_format": settings.photo_format, "crop_max_px": settings.crop_max_px,
            "detect_width": settings.detect_width_px, "min_face_px": settings.min_face_px,
            "min_confidence": settings.min_face_confidence}


def _detector_label(serving: dict) -> str:
    """The detector in the job's result: "yunet (openvino)", "mtcnn"."""
    runtime = serving.get("detector_runtime")
    return f"{serving['detector']} ({runtime})" if serving["detector"] == "yunet" and runtime \
        else serving["detector"]


def serving_options_from(settings: Settings, artifact: dict) -> dict:
    """`ServingOptions` fields (but size and batch) from the settings and a version's artifact
    (`model.serving.artifact.read_artifact`)."""
    from model.serving.faces import MTCNN, YUNET
    from model.serving.yunet import RUNTIMES

    detector = settings.face_detector
    if detector not in (YUNET, MTCNN):
        from model.errors import UserError

        raise UserError(f"CHECKOUT_AGE_FACE_DETECTOR={detector!r}: expected {YUNET} or {MTCNN}")
    yunet = detector == YUNET
    if settings.yunet_runtime not in RUNTIMES:
        from model.errors import UserError

        raise UserError(f"CHECKOUT_AGE_YUNET_RUNTIME={settings.yunet_runtime!r}: expected one "
                        f"of {', '.join(RUNTIMES)}")
    return {"artifact": str(artifact["path"]), "precision": artifact["precision"],
            "threads": settings.serving_threads, "cpu_pinning": settings.serving_cpu_pinning,
            "detector": detector, "detector_runtime": settings.yunet_runtime,
            "detect_width": settings.yunet_width_px if yunet else settings.detect_width_px,
            "min_confidence": (settings.yunet_min_confidence if yunet
                               else settings.min_face_confidence),
            "min_face_px": settings.min_face_px, "photo_format": settings.photo_format,
            "crop_max_px": settings.crop_max_px}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Arguments of the spark-submit application (defaults from `load_settings()`)."""
    from jobs.daily.arguments import add_score_arguments, job_arg_parser
    from model.config import load_settings

    settings = load_settings()
    parser = job_arg_parser("score_photos.py", __doc__.splitlines()[0], "score", settings.data_root)
    add_score_arguments(parser, settings)
    args = parser.parse_args(argv)
    args.settings = settings
    return args


def run_job(args: argparse.Namespace, session: Callable[[], SparkSession],
            clock: PhaseClock | None = None) -> dict:
    """Score the days of `args` (`parse_args`) in the session `session()` returns; the result.

    `session` is called once the model is resolved, so a session still starting (spark-submit's
    own application) overlaps the registry's work; the job server passes its live session.

    Raises:
        UserError: a one-day run that cannot run, or a model that cannot be served.
    """
    from jobs.contract import normalise_root
    from jobs.daily.day_range import day_range, run_days
    from jobs.daily.run_lock import day_lock
    from model.errors import UserError
    from model.evaluation.calibration import load_calibration
    from model.lifecycle.registry import ModelRegistry
    from model.serving.artifact import read_artifact

    clock = clock or PhaseClock()
    settings = args.settings
    days = day_range(args.date, args.date_to)
    # Resolved once, here on the driver: the whole run uses this version (its files are
    # local after `resolve`); the workers load its model file once each and never see MLflow.
    version = ModelRegistry(args.registry, cache_dir=settings.cache_dir / "models").resolve(
        args.model)
    try:
        calibration = load_calibration(version.path)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if calibration is None:
        log.warning("model %s has no calibration.json: age_low, age_high and "
                    "p_under_legal_age will be NULL", version.version)
    artifact = read_artifact(version.path) if version.path is not None else None
    if artifact is None:
        log.warning("model %s has no serving artifact: scoring through Keras and MTCNN "
                    "(TensorFlow in every worker, several times slower)", version.version)
    serving = serving_options_from(settings, artifact) if artifact is not None else None
    spark = session()
    clock.done("session")  # the Spark session, the model resolved beside it

    def score_day(day: str) -> dict:
        # The first day's phases include the session; each later day has its own clock.
        day_clock = clock if day == days[0] else PhaseClock()
        with day_lock(args.root, day, "score_photos"):  # one run of a day at a time
            counts = run(
                spark, root=normalise_root(args.root), run_date=day,
                model_path=str(version.model_path), model_version=version.version,
                image_size=version.image_size, batch_size=args.batch_size,
                decode_limits=settings.decode_limits(), partitions=args.partitions,
                calibration=calibration, face_options=face_options_from(settings),
                model_run_id=version.run_id, serving=serving, clock=day_clock,
            )
            day_clock.log()
        return counts

    return run_days(days, score_day)


def main(argv: list[str] | None = None) -> int:
    """Entry point for spark-submit: resolve the model, build the session, run, print counts."""
    from concurrent.futures import ThreadPoolExecutor

    from jobs.daily.day_range import day_range
    from jobs.daily.spark import build_spark, emit_result
    from model.errors import UserError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    clock = PhaseClock()
    args = parse_args(argv)
    try:
        day_range(args.date, args.date_to)  # a bad range starts no JVM
        # The Spark session starts in the JVM while this thread imports MLflow and resolves the
        # model: both take seconds of one core each, and the machine has more than one.
        session = ThreadPoolExecutor(1, thread_name_prefix="spark-start").submit(
            build_spark, "checkout-age-score", args.master)
        counts = run_job(args, session.result, clock)
    except UserError as exc:
        log.error("%s", exc)
        return 2
    emit_result(counts, args.result_json)
    return 2 if counts.get("failed") else 0


if __name__ == "__main__":
    # Re-enter through the package module so Spark pickles the UDFs by reference, not by value
    # from __main__ (by value, every worker re-imported TensorFlow for the decode step too).
    from jobs.daily.score_photos import main as package_main

    sys.exit(package_main())
