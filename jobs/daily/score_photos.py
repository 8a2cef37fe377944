"""Job 1: score one day's checkout photos with the production age model.

    <venv>/bin/spark-submit --master 'local[*]' jobs/daily/score_photos.py --date 2026-03-14 \
        --root var/data --registry var/registry --model production

(`checkout-age score` builds exactly this command; Airflow's SparkSubmitOperator runs the same
file with the same arguments.) Reads `ROOT/landing/date=D/photos/**` with the `binaryFile`
source and `photos.csv`, decodes each photo with `model.images.decode_face`, predicts ages with
`predict_batch_udf` (the model is loaded once per Python worker, fed batches), and replaces the
day's `photo_scores` and `photo_quarantine` partitions. Photos in = scored + quarantined.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from collections.abc import Iterator  # resolved at runtime by pandas_udf's type hints
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger("jobs.daily.score_photos")


def pixels_udf(size: int, limits: dict[str, int] | None = None):  # -> pandas UDF
    """Pandas UDF: image bytes -> flat float32 pixels (size*size*3) as the model's input.

    An iterator UDF, like `predict_batch_udf`'s, so Spark chains the two in one Python worker:
    `predict(pixels(content))` hands the decoded arrays straight to the model without a round
    trip through the JVM (which cost more than the inference: bench/bench_jobs.py). Bytes that
    `decode_face` rejects (and NULL bytes) give zero pixels; `check_udf` says why.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, FloatType

    limits = dict(limits or {})

    @F.pandas_udf(ArrayType(FloatType(), containsNull=False))
    def pixels(batches: Iterator[pd.Series]) -> Iterator[pd.Series]:
        from model.images import ImageRejected, decode_face

        blank = np.zeros(size * size * 3, dtype=np.float32)
        for content in batches:
            out = []
            for data in content:
                flat = blank
                if data is not None:
                    try:
                        flat = decode_face(bytes(data), size, **limits).reshape(-1)
                        flat = flat.astype(np.float32)
                    except ImageRejected:
                        pass
                out.append(flat)
            yield pd.Series(out)

    return pixels


def check_udf(limits: dict[str, int] | None = None):  # -> pandas UDF
    """Pandas UDF: image bytes -> struct(reason, detail), NULLs when the image decodes.

    Uses `model.images.open_image`, the decoder's own checks, so it rejects exactly what
    `decode_face` rejects; NULL bytes (nothing to decode) are not its business.
    """
    from pyspark.sql import functions as F

    limits = dict(limits or {})

    @F.pandas_udf("reason string, detail string")
    def check(content: pd.Series) -> pd.DataFrame:
        from model.images import ImageRejected, open_image

        reasons, details = [], []
        for data in content:
            reason = detail = None
            if data is not None:
                try:
                    open_image(bytes(data), **limits)
                except ImageRejected as exc:
                    reason, detail = exc.reason, exc.detail
            reasons.append(reason)
            details.append(detail)
        return pd.DataFrame({"reason": reasons, "detail": details})

    return check


def age_udf(model_path: str, size: int, batch_size: int, flip_tta: bool = True):  # -> UDF
    """`predict_batch_udf` over flattened (size, size, 3) pixels -> predicted age (float)."""
    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql.types import FloatType

    def make_predict_fn():
        # Runs once per Python worker: the loaded model is cached there between batches.
        from model.net import load_age_model
        from model.predict import predict_ages

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


def score_inventory(inventory: DataFrame, check, pixels, predict) -> DataFrame:
    """Decode and score every inventory row; reason = metadata reason, else the decoder's.

    Args:
        inventory: `jobs.daily.photos.photo_inventory` rows (content NULL when not to be decoded).
        check, pixels, predict: the UDFs above (`check_udf`, `pixels_udf`, `age_udf`).
    """
    from pyspark.sql import functions as F

    checked = inventory.select(
        "photo_id", "store_id", "lane_id", "captured_at", "reason", "detail",
        predict(pixels(F.col("content"))).alias("age_pred_years"),
        check(F.col("content")).alias("_check"),
    )
    return checked.select(
        "photo_id", "store_id", "lane_id", "captured_at", "age_pred_years",
        F.coalesce("reason", "_check.reason").alias("reason"),
        F.coalesce("detail", "_check.detail").alias("detail"),
    )


def _path_key(path: str) -> str:
    """`file:/x` and `file:///x` (Hadoop prints both) as one key."""
    return re.sub(r"^([A-Za-z][\w+.-]*):/+", r"\1:///", path)


def read_photo_files(spark: SparkSession, photos_dir: str) -> DataFrame:
    """Every file under the day's `photos/` folder: path, content.

    The binaryFile source silently skips zero-length files; they are found by comparing its
    file listing with the paths it reads (no content is read for that) and added with empty
    content, so they become `not_an_image` quarantine rows rather than lost photos.
    """
    from jobs.daily.storage import path_exists

    schema = "path string, content binary"
    if not path_exists(spark, photos_dir):
        return spark.createDataFrame([], schema)
    reader = spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(photos_dir)
    listed = {_path_key(path): path for path in reader.inputFiles()}
    read = {_path_key(row.path) for row in reader.select("path").collect()}
    empty = [(listed[key], b"") for key in sorted(listed.keys() - read)]
    files = reader.select("path", "content")
    return files.unionByName(spark.createDataFrame(empty, schema)) if empty else files


def run(spark: SparkSession, *, root: str, run_date: str, model_path: str, model_version: str,
        image_size: int, batch_size: int = 64, decode_limits: dict[str, int] | None = None,
        partitions: int | None = None) -> dict:
    """Score day `run_date` under `root`; replace its photo partitions; return the counts."""
    from jobs.daily import photos
    from jobs.daily.csv_lines import read_csv_lines
    from jobs.daily.storage import require_complete_day, write_partition

    landing = require_complete_day(spark, root, run_date)
    # Photos are ~10-50 KB: Spark's default 4 MB "open cost" per file would make one task per
    # ~32 photos; count them nearer their size so a task reads thousands.
    spark.conf.set("spark.sql.files.openCostInBytes", str(256 * 1024))
    files = photos.file_photo_ids(read_photo_files(spark, f"{landing}/photos"))
    meta = photos.check_photo_metadata(
        read_csv_lines(spark, f"{landing}/photos.csv", photos.PHOTO_META_COLUMNS)
    )
    # One scoring task keeps two Python workers busy (the decode check, and decode + model with
    # its own thread pool), so half as many tasks as cores; hash partitioning evens them out.
    parts = partitions or max(1, spark.sparkContext.defaultParallelism // 2)
    inventory = photos.photo_inventory(files, meta).repartition(parts, "photo_id")
    scored = score_inventory(
        inventory,
        check_udf(decode_limits),
        pixels_udf(image_size, decode_limits),
        age_udf(model_path, image_size, batch_size),
    ).cache()  # feeds three actions
    try:
        # Count first: it fills the cache with full parallelism (the writes coalesce to one file,
        # which would otherwise pull the scoring itself into a single task).
        started = time.perf_counter()
        by_reason = {
            row["reason"]: row["count"] for row in scored.groupBy("reason").count().collect()
        }
        log.info("decoded and scored in %.1f s", time.perf_counter() - started)
        write_partition(photos.photo_scores(scored, model_version), root, "photo_scores", run_date)
        write_partition(photos.photo_quarantine(scored), root, "photo_quarantine", run_date)
    finally:
        scored.unpersist()
    scored_count = by_reason.pop(None, 0)
    counts = {
        "date": run_date,
        "model_version": model_version,
        "photos_in": scored_count + sum(by_reason.values()),
        "photos_scored": scored_count,
        "photos_quarantined": sum(by_reason.values()),
        "quarantine_reasons": dict(sorted(by_reason.items())),
    }
    log.info("scored %s: %s", run_date, counts)
    return counts


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Arguments of the spark-submit application (defaults from `load_settings()`)."""
    from jobs.daily.spark import job_arg_parser
    from model.config import load_settings

    settings = load_settings()
    parser = job_arg_parser("score_photos.py", __doc__.splitlines()[0], "score", settings.data_root)
    parser.add_argument("--registry", default=str(settings.registry_root), help="model registry")
    parser.add_argument("--model", default="production",
                        help="'production', a version (v0003) or a .keras path")
    parser.add_argument("--batch-size", type=int, default=settings.score_batch_size)
    parser.add_argument("--partitions", type=int, default=None,
                        help="scoring tasks (default: half of Spark's default parallelism)")
    args = parser.parse_args(argv)
    args.settings = settings
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point for spark-submit: resolve the model, build the session, run, print counts."""
    from jobs.contract import check_date, normalise_root
    from jobs.daily.spark import build_spark, emit_result
    from model.errors import UserError
    from model.registry import ModelRegistry

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    settings = args.settings
    try:
        run_date = check_date(args.date)
        version = ModelRegistry(args.registry).resolve(args.model)
        spark = build_spark("checkout-age-score", args.master)
        counts = run(
            spark, root=normalise_root(args.root), run_date=run_date,
            model_path=str(version.model_path), model_version=version.version,
            image_size=version.image_size, batch_size=args.batch_size,
            decode_limits={"min_side": settings.min_side_px, "max_side": settings.max_side_px,
                           "max_pixels": settings.max_pixels},
            partitions=args.partitions,
        )
    except UserError as exc:
        log.error("%s", exc)
        return 2
    emit_result(counts, args.result_json)
    return 0


if __name__ == "__main__":
    # Re-enter through the package module so Spark pickles the UDFs by reference, not by value
    # from __main__ (by value, every worker re-imported TensorFlow for the decode step too).
    from jobs.daily.score_photos import main as package_main

    sys.exit(package_main())
