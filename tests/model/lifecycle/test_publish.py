"""The one publish path: the policy reaches every figure, extra producers add artifacts, the
version is registered from the producer's MLflow run."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from model.evaluation.metrics import age_metrics
from model.lifecycle.publish import (
    Policy,
    ProducedArtifact,
    ProducerInputs,
    document_version,
    publish_version,
)
from model.lifecycle.registry import ModelRegistry
from model.lifecycle.tracking import flat_metrics, metric_key, tracked_run


@pytest.fixture(scope="module")
def tiny_model() -> keras.Model:
    inputs = keras.Input((12, 12, 3))
    outputs = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling2D()(inputs))
    return keras.Model(inputs, outputs)


def _split_rows(count: int = 300) -> tuple[pd.DataFrame, dict]:
    """Rows whose estimates are the truth plus a known spread (ages 10..69)."""
    rng = np.random.default_rng(7)
    ages = np.tile(np.arange(10, 70), count // 60 + 1)[:count].astype(float)
    split = np.array(["train", "valid", "test"] * (count // 3 + 1))[:count]
    rows = pd.DataFrame({"real_age": ages, "split": split,
                         "sha256": [f"{i:064x}" for i in range(count)]})
    predictions = {name: ages[split == name] + rng.normal(0, 4, (split == name).sum())
                   for name in ("valid", "test")}
    return rows, predictions


def test_the_policy_reaches_the_calibration_the_metrics_and_the_card(
    tiny_model: keras.Model, tmp_path: Path
) -> None:
    rows, predictions = _split_rows()
    policy = Policy(legal_age=21, challenge_age=27, coverage=0.9)
    truth = {name: rows.loc[rows["split"] == name, "real_age"].to_numpy() for name in predictions}
    metrics = {name: age_metrics(truth[name], predictions[name], legal_age=policy.legal_age,
                                 challenge_age=policy.challenge_age) for name in predictions}
    recorded = {"faces_dir": "/faces", "rows": {"train": 100, "valid": 100, "test": 100},
                "size": 12, "backbone": "tiny"}
    files = document_version(tiny_model, rows, metrics, predictions, recorded, "f" * 64, policy,
                             tmp_path)
    calibration = json.loads(files.extra["calibration.json"].read_text())
    assert (calibration["legal_age"], calibration["coverage"]) == (21, 0.9)
    assert files.metrics["test"]["calibration"]["legal_age"] == 21
    assert files.metrics["test"]["calibration"]["coverage_target"] == 0.9
    assert "True minors (<21" in files.card and "Challenge-27" in files.card
    assert "P(age < 21)" in files.card
    hashes = files.extra["training_images.txt"].read_text().split()
    assert sorted(hashes) == sorted(rows.loc[rows["split"] != "test", "sha256"])


def test_publish_runs_the_producers_and_registers_from_the_run(
    tiny_model: keras.Model, tmp_path: Path
) -> None:
    rows, predictions = _split_rows(120)
    truth = {name: rows.loc[rows["split"] == name, "real_age"].to_numpy() for name in predictions}
    metrics = {name: age_metrics(truth[name], predictions[name]) for name in predictions}
    recorded = {"faces_dir": "/faces", "rows": {"train": 40, "valid": 40, "test": 40}, "size": 12}
    (tmp_path / "work").mkdir()
    valid = (rows["split"] == "valid").to_numpy()
    images = np.random.default_rng(1).integers(0, 256, (len(rows), 12, 12, 3), np.uint8)
    seen = []

    def export(inputs: ProducerInputs, folder: Path) -> ProducedArtifact:
        seen.append((inputs.model_path.name, inputs.config["size"], len(inputs.valid_images)))
        assert inputs.model is tiny_model
        np.testing.assert_array_equal(inputs.valid_images, images[valid])
        np.testing.assert_array_equal(inputs.valid_ages, truth["valid"])
        np.testing.assert_array_equal(inputs.valid_predictions, predictions["valid"])
        (folder / "model.onnx").write_bytes(b"onnx")
        return ProducedArtifact({"model.onnx": folder / "model.onnx"},
                                {"serving": {"verified": False, "runtime": "onnx",
                                             "max_abs_diff_vs_keras_years": 0.5}})

    files = document_version(tiny_model, rows, metrics, predictions, recorded, "f" * 64, Policy(),
                             tmp_path / "work", valid_images=images[valid], producers=[export])
    assert seen == [("model.keras", 12, 40)]
    # The producer ran before the card: its figures are in the metrics and on the card.
    assert files.metrics["serving"]["max_abs_diff_vs_keras_years"] == 0.5
    assert "onnx artifact refused: it differed from Keras by up to 0.500 years" in files.card
    registry = ModelRegistry(tmp_path / "store")
    with tracked_run(registry.store, "train", params={"size": 12}) as run:
        result = publish_version(files, registry=registry, run=run, out_dir=tmp_path / "out")
    version = registry.resolve(result.version)
    assert (version.path / "model.onnx").read_bytes() == b"onnx"
    assert (tmp_path / "out" / "model.onnx").is_file()
    assert version.run_id == run.run_id == result.run_id
    logged = registry.client.get_run(run.run_id)
    assert logged.data.metrics["test.mae"] == pytest.approx(metrics["test"]["mae"])
    assert logged.data.metrics["test.by_band.65plus.mae"] == pytest.approx(
        metrics["test"]["by_band"]["65+"]["mae"])
    assert logged.data.tags["model_version"] == result.version
    assert logged.data.params["size"] == "12"
    assert logged.data.metrics["serving.max_abs_diff_vs_keras_years"] == pytest.approx(0.5)
    names = {f.path for f in registry.client.list_artifacts(run.run_id, "version")}
    assert {"version/model.keras", "version/card.md", "version/training_images.txt",
            "version/model.onnx", "version/plots"} <= names


def test_metric_keys_are_ones_mlflow_accepts() -> None:
    assert metric_key("test", "by_band", "<13", "mae") == "test.by_band.lt13.mae"
    assert flat_metrics({"a": {"b": 1, "c": True, "d": None, "e": float("nan")}, "f": 2.5}) == {
        "a.b": 1.0, "f": 2.5}
