"""Score job pieces: which photos can be scored, decoding with reasons, the scoring UDF."""

from __future__ import annotations

import numpy as np
import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from jobs.daily.csv_lines import read_csv_lines
from jobs.daily.photos import (
    PHOTO_META_COLUMNS,
    age_group,
    check_photo_metadata,
    file_photo_ids,
    photo_inventory,
    photo_quarantine,
    photo_scores,
)

PHOTOS_CSV = """photo_id,store_id,lane_id,captured_at
pA,S1,1,2026-03-14T10:00:03.120Z
pB,S1,1,2026-03-14 10:00
pD,S1,2,2026-03-14T10:00:04Z
pA,S1,1,2026-03-14T10:00:05Z
pE,S1,lane2,2026-03-14T10:00:06Z
,S1,1,2026-03-14T10:00:07Z
"""


def test_inventory_accounts_for_every_file_and_metadata_row(spark, tmp_path):
    (tmp_path / "photos.csv").write_text(PHOTOS_CSV)
    meta = check_photo_metadata(read_csv_lines(spark, str(tmp_path / "photos.csv"),
                                               PHOTO_META_COLUMNS))
    files = file_photo_ids(spark.createDataFrame([
        ("file:/d/photos/store=S1/lane=1/pA.jpg", b"a"),
        ("file:/d/photos/store=S1/lane=2/pA.jpg", b"a2"),
        ("file:/d/photos/store=S1/lane=1/pB.jpg", b"b"),
        ("file:/d/photos/store=S1/lane=1/pC.jpg", b"c"),
        ("file:/d/photos/store=S1/lane=1/pE.jpeg", b"e"),
    ], "path string, content binary"))
    inventory = photo_inventory(files, meta).select(
        "photo_id", "store_id", "lane_id", F.col("content").isNotNull().alias("to_decode"),
        "reason", "detail",
    )
    expected = spark.createDataFrame([
        ("pA", "S1", 1, True, None, None),
        ("pB", "S1", 1, False, "bad_metadata", "photos.csv line 3: captured_at 2026-03-14 10:00"),
        ("pC", None, None, False, "no_metadata", "photo file but no photos.csv row"),
        ("pD", "S1", 2, False, "missing_file", "metadata row but no photo file"),
        ("pA", "S1", 1, False, "duplicate_photo_id", "photos.csv line 5 repeats this photo id"),
        ("pA", None, None, False, "duplicate_photo_id", "a second photo file with this id"),
        ("pE", "S1", None, False, "bad_metadata", "photos.csv line 6: lane_id lane2"),
        ("photos.csv:7", "S1", 1, False, "missing_file", "metadata row but no photo file"),
    ], "photo_id string, store_id string, lane_id int, to_decode boolean, reason string, "
       "detail string")
    assertDataFrameEqual(inventory, expected)


def test_age_groups_follow_config_bounds(spark):
    ages = spark.createDataFrame(
        [(-3.0,), (17.99,), (18.0,), (24.5,), (25.0,), (64.9,), (65.0,), (101.0,), (None,)],
        "age double",
    )
    got = [r.g for r in ages.select(age_group("age").alias("g")).collect()]
    assert got == ["under 18", "under 18", "18-24", "18-24", "25-34", "55-64", "65+", "65+", None]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A small untrained Keras model following the contract: raw pixels (S,S,3) -> age."""
    import keras

    keras.utils.set_random_seed(0)
    pixels = keras.Input((32, 32, 3), dtype="float32")
    x = keras.layers.Rescaling(1 / 255)(pixels)
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    age = keras.layers.Dense(1, bias_initializer=keras.initializers.Constant(30.0))(x)
    path = tmp_path_factory.mktemp("tiny") / "tiny.keras"
    keras.Model(pixels, age).save(path)
    return path


def test_scoring_udf_matches_in_process_prediction(spark, faces_dir, tiny_model):
    from jobs.daily.score_photos import age_udf, face_udf, pixels_udf, score_inventory
    from model.serving.images import decode_face
    from model.serving.net import load_age_model
    from model.serving.predict import predict_ages

    names = ["000000.jpg", "000001.jpg", "000002.jpg"]
    raw = [(faces_dir / "final_files" / name).read_bytes() for name in names]
    inventory = spark.createDataFrame(
        [(f"p{i}", "S1", 1, None, data, None, None) for i, data in enumerate(raw)]
        + [("bad", "S1", 1, None, b"GIF89a-not-really", None, None),
           ("cut", "S1", 1, None, raw[0][: len(raw[0]) // 3], None, None),
           ("meta", "S1", 1, None, None, "missing_file", "metadata row but no photo file")],
        "photo_id string, store_id string, lane_id int, captured_at timestamp, content binary, "
        "reason string, detail string",
    )
    scored = score_inventory(inventory, face_udf(), pixels_udf(32), age_udf(str(tiny_model), 32, 2))
    rows = {r.photo_id: r for r in scored.collect()}
    assert {rows[f"p{i}"].faces_found for i in range(3)} == {None}  # crops: nothing detected

    expected = predict_ages(load_age_model(tiny_model),
                            np.stack([decode_face(data, 32) for data in raw]))
    got = np.array([rows[f"p{i}"].age_pred_years for i in range(3)])
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert [rows[f"p{i}"].reason for i in range(3)] == [None, None, None]
    assert [rows[p].reason for p in ("bad", "cut", "meta")] == [
        "not_an_image", "unreadable_image", "missing_file"]

    scores = photo_scores(scored, "v9")
    assert sorted(r.photo_id for r in scores.collect()) == ["p0", "p1", "p2"]
    assert {r.model_version for r in scores.collect()} == {"v9"}
    assert sorted(r.photo_id for r in photo_quarantine(scored).collect()) == ["bad", "cut", "meta"]


def _frame_bytes(faces_dir, name: str | None, seed: int) -> bytes:
    """A 1280x720 JPEG scene with a faces-set crop pasted at ~150 px face width (or none)."""
    import io

    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = np.linspace(40, 200, 1280)[None, :, None] + rng.normal(0, 15, (720, 1280, 3))
    scene = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    if name:
        with Image.open(faces_dir / "final_files" / name) as crop:
            scene.paste(crop.convert("RGB").resize((185, 185)), (400 + 40 * seed, 380))
    out = io.BytesIO()
    scene.save(out, format="JPEG", quality=80)
    return out.getvalue()


def test_scoring_udf_finds_and_crops_the_face_in_frames(spark, faces_dir, tiny_model):
    """Frames: detection in the face UDF, crop + model in the chained UDFs, same as in-process;
    the detector runs once per row; a frame without a face is quarantined `no_face`."""
    from PIL import Image

    from jobs.daily.score_photos import age_udf, face_udf, pixels_udf, score_inventory
    from model.serving.faces import crop_from, locate_photos
    from model.serving.net import load_age_model
    from model.serving.predict import predict_ages

    frames = [_frame_bytes(faces_dir, name, i) for i, name in
              enumerate(["000000.jpg", "000001.jpg", "000002.jpg", None])]
    crop = (faces_dir / "final_files" / "000005.jpg").read_bytes()
    inventory = spark.createDataFrame(
        [(f"f{i}", "S1", 1, None, data, None, None) for i, data in enumerate([*frames, crop])],
        "photo_id string, store_id string, lane_id int, captured_at timestamp, content binary, "
        "reason string, detail string",
    ).repartition(2)
    scored = score_inventory(inventory, face_udf(), pixels_udf(32), age_udf(str(tiny_model), 32, 2))
    plan = scored._jdf.queryExecution().executedPlan().toString()
    assert plan.count("faces(") == 1, plan  # nondeterministic: never evaluated twice
    rows = {r.photo_id: r for r in scored.collect()}

    located = locate_photos(frames[:3])
    images = [Image.open(io_bytes(data)).convert("RGB") for data in frames[:3]]
    expected = predict_ages(load_age_model(tiny_model), np.stack(
        [crop_from(image, row["crop"], 32) for image, row in zip(images, located, strict=True)]))
    got = np.array([rows[f"f{i}"].age_pred_years for i in range(3)])
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    for i, row in enumerate(located):
        assert rows[f"f{i}"].reason is None and rows[f"f{i}"].faces_found == 1
        assert (rows[f"f{i}"].face_x, rows[f"f{i}"].face_w) == (row["face_x"], row["face_w"])
    assert (rows["f3"].reason, rows["f3"].faces_found) == ("no_face", 0)
    assert rows["f4"].reason is None and rows["f4"].faces_found is None  # a crop, scored whole

    scores = {r.photo_id: r for r in photo_scores(scored, "v9").collect()}
    assert sorted(scores) == ["f0", "f1", "f2", "f4"]
    assert 0.9 <= scores["f0"].face_confidence <= 1 and scores["f0"].face_h > 0
    assert [r.reason for r in photo_quarantine(scored).collect()] == ["no_face"]


def io_bytes(data: bytes):
    import io

    return io.BytesIO(data)


def test_serving_udf_equals_in_process_serving_on_frames_and_crops(spark, faces_dir, tiny_model,
                                                                  tmp_path):
    """The one-UDF serving path, scored where the files are read and joined to the metadata
    after: same verdicts, boxes and ages as `score_contents` in process; every file scored
    exactly once; bad bytes, metadata reasons and duplicates kept."""
    import keras

    from jobs.daily.score_photos import score_files, serve_udf, served_columns
    from model.serving.artifact import export_artifact
    from model.serving.score import ServingOptions, score_contents

    artifact = export_artifact(keras.saving.load_model(tiny_model, compile=False), tmp_path)
    options = {"artifact": str(artifact), "size": 32, "batch_size": 2}
    frames = [_frame_bytes(faces_dir, name, i) for i, name in
              enumerate(["000000.jpg", "000001.jpg", "000002.jpg", None])]
    crop = (faces_dir / "final_files" / "000005.jpg").read_bytes()
    contents = [*frames, crop, b"GIF89a-not-really"]
    (tmp_path / "photos.csv").write_text("photo_id,store_id,lane_id,captured_at\n" + "".join(
        f"{pid},S1,{lane},2026-03-14T10:00:0{i}Z\n" for i, (pid, lane) in enumerate(
            [(f"f{i}", 1) for i in range(6)] + [("bad", 0), ("meta", 1)])))
    meta = check_photo_metadata(read_csv_lines(spark, str(tmp_path / "photos.csv"),
                                               PHOTO_META_COLUMNS))
    files = file_photo_ids(spark.createDataFrame(
        [(f"file:/d/photos/lane=1/f{i}.jpg", data) for i, data in enumerate(contents)]
        + [("file:/d/photos/lane=2/f0.jpg", frames[0]), ("file:/d/photos/lane=1/bad.jpg", crop)],
        "path string, content binary").repartition(2))
    scored = served_columns(photo_inventory(score_files(files, serve_udf(options)), meta,
                                            "_face"))
    rows = {(r.photo_id, r.store_id): r for r in scored.collect()}
    # The files are read twice (the first files, the duplicates) but scored once: the
    # duplicates' branch needs no verdict, so its scan reads paths only.
    final_plan = scored._jdf.queryExecution().executedPlan().toString()
    final_plan = final_plan.split("== Initial Plan ==")[0]
    assert final_plan.count("serve(") == 1, final_plan
    expected = score_contents(contents, ServingOptions(**options))
    for i, want in enumerate(expected):
        got = rows[f"f{i}", "S1"]
        assert (got.reason, got.faces_found, got.face_x, got.face_w) == (
            want["reason"], want["faces_found"], want["face_x"], want["face_w"])
        if want["age_pred_years"] is None:
            assert got.age_pred_years is None
        else:
            assert abs(got.age_pred_years - want["age_pred_years"]) < 1e-4
    assert [rows[f"f{i}", "S1"].reason for i in range(6)] == [None, None, None, "no_face", None,
                                                              "not_an_image"]
    assert rows["f4", "S1"].faces_found is None  # a crop, scored whole
    for key, reason in ((("meta", "S1"), "missing_file"), (("bad", "S1"), "bad_metadata"),
                        (("f0", None), "duplicate_photo_id")):
        assert (rows[key].reason, rows[key].age_pred_years, rows[key].faces_found) == (
            reason, None, None)
    assert len(rows) == 9
    assert sorted(r.photo_id for r in photo_scores(scored, "v9").collect()) == [
        "f0", "f1", "f2", "f4"]


def test_task_usage_splits_the_workers_cpu_and_reports_it(capsys):
    """The serving worker's log line: photos counted per block, the scoring's CPU apart from
    the rest of the task."""
    import time

    from jobs.daily.score_photos import TaskUsage

    def burn(seconds: float) -> None:
        end = time.process_time() + seconds
        while time.process_time() < end:
            pass

    usage = TaskUsage()
    with usage.scoring(3):
        burn(0.2)
    burn(0.1)  # between batches: Arrow and pandas work in a real task
    with usage.scoring(2):
        burn(0.2)
    usage.report()
    assert usage.photos == 5
    assert 0.4 <= usage.scoring_core_s < 0.5
    line = capsys.readouterr().err
    assert line.startswith("score task: 5 photos, scoring 0.4 core-s (0.08")
    rest = float(line.split("the rest of the task ")[1].split(",")[0])
    assert 0.1 <= rest < 1.0  # other threads of this process (Spark's py4j) may add a little


def test_phase_clock_times_each_phase_from_the_end_of_the_last(caplog):
    import logging
    import time

    from jobs.daily.score_photos import PhaseClock

    clock = PhaseClock()
    time.sleep(0.2)
    assert clock.done("session") >= 0.2
    assert clock.done("inputs") < 0.2  # counted from the end of "session", not the start
    with caplog.at_level(logging.INFO, logger="jobs.daily.score_photos"):
        clock.log()
    assert list(clock.seconds) == ["session", "inputs"]
    assert f"phases: session {clock.seconds['session']:.2f} s, inputs" in caplog.text


def test_scan_splits_are_even_and_a_multiple_of_the_cores(spark, tmp_path):
    """The score job scores photos in the file scan's tasks: `scan_split_bytes` makes Spark cut
    a day into a multiple of the cores of even splits (plus at most a file or two), where its
    own cap alone leaves an odd last split that would run alone."""
    from jobs.daily.score_photos import read_photo_files_sized, scan_split_bytes

    sizes = [int(n) for n in np.random.default_rng(3).integers(1_000, 20_000, 400)]
    for i, size in enumerate(sizes):
        (tmp_path / f"p{i:03d}.jpg").write_bytes(b"x" * size)
    (tmp_path / "empty.jpg").write_bytes(b"")
    files, listed = read_photo_files_sized(spark, str(tmp_path))
    assert sorted(listed) == sorted(sizes)  # the empty file is read apart, with empty content
    open_cost, most, cores = 4096, 2_000_000, 2
    total = sum(size + open_cost for size in sizes)

    def splits(max_bytes: int) -> list[tuple[int, int]]:
        """(files, weight) of each scan split, largest first."""
        settings = {"spark.sql.files.openCostInBytes": open_cost,
                    "spark.sql.files.maxPartitionBytes": max_bytes,
                    "spark.sql.files.minPartitionNum": cores}  # as on a 2-core machine
        for key, value in settings.items():
            spark.conf.set(key, str(value))
        try:
            rows = files.where(F.length("content") > 0).groupBy(F.spark_partition_id()).agg(
                F.count("*").alias("n"), F.sum(F.length("content") + open_cost).alias("w"))
            return sorted(((r.n, r.w) for r in rows.collect()), key=lambda s: -s[1])
        finally:
            for key in settings:
                spark.conf.unset(key)

    assert len(splits(most)) == 3  # Spark's own 2 MB cap: 5.8 MB in 3 splits, one runs alone
    split = scan_split_bytes(sizes, cores, open_cost, most)
    big = [s for s in splits(split) if s[0] > 2]
    assert len(big) == 2 * cores  # 5.8 MB over 4 MB a round: two rounds of two
    largest = max(sizes) + open_cost
    assert sum(w for _, w in big) >= total - 2 * largest
    # Each split closes within a file of the same size; the last takes what is left.
    assert max(w for _, w in big) - min(w for _, w in big) <= len(big) * largest
    # A day under one round: one split per core.
    assert scan_split_bytes(sizes, cores, open_cost, 10**9) == -(-total // cores) + max(
        sizes) + open_cost
    assert scan_split_bytes([], cores, open_cost, most) == most


def test_zero_length_files_are_kept_as_a_local_table(spark, tmp_path):
    """binaryFile skips empty files; they come back with empty content (to be quarantined as
    `not_an_image`) from a local table, so no scan of the day needs a Python worker to read
    them (a DataFrame made from a list is a Python RDD, re-pickled by Python workers)."""
    from jobs.daily.score_photos import read_photo_files_sized

    (tmp_path / "photos" / "lane=1").mkdir(parents=True)
    (tmp_path / "photos" / "lane=1" / "a.jpg").write_bytes(b"\xff\xd8 not much")
    (tmp_path / "photos" / "lane=1" / "empty.jpg").write_bytes(b"")
    (tmp_path / "photos" / "lane=1" / "empty2.jpg").write_bytes(b"")
    files, sizes = read_photo_files_sized(spark, str(tmp_path / "photos"))
    assert sizes == [len(b"\xff\xd8 not much")]
    contents = {row.path.rsplit("/", 1)[1]: bytes(row.content) for row in files.collect()}
    assert contents == {"a.jpg": b"\xff\xd8 not much", "empty.jpg": b"", "empty2.jpg": b""}
    plan = files._jdf.queryExecution().executedPlan().toString()
    assert "LocalTableScan" in plan and "ExistingRDD" not in plan, plan

    nothing, no_sizes = read_photo_files_sized(spark, str(tmp_path / "no-such-folder"))
    assert (nothing.collect(), no_sizes) == ([], [])
    assert nothing.columns == ["path", "content"]
