"""The feature-cache profile: frozen activations computed once, the tail trained on them, and
the result still one ordinary model taking raw pixels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from jobs.cli.main import main as cli_main
from model.errors import UserError
from model.lifecycle.registry import ModelRegistry
from model.serving.net import build_age_model, load_age_model
from model.serving.predict import predict_ages
from model.training.augment import flip_horizontal
from model.training.feature_cache import extract_features, split_model

SIZE = 96


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, (6, SIZE, SIZE, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def halves():
    return split_model(build_age_model("mobilenet_v2", SIZE), "block_12_add")


def test_front_then_tail_is_the_full_model(halves, pixels: np.ndarray) -> None:
    x = pixels.astype(np.float32)
    full = np.asarray(halves.full.predict_on_batch(x))
    composed = np.asarray(halves.tail.predict_on_batch(halves.front.predict_on_batch(x)))
    np.testing.assert_allclose(composed, full, rtol=1e-4, atol=1e-3)
    assert halves.front.output_shape == (None, 6, 6, 96)
    # The halves share the full model's weights: nothing is copied, and none is in both.
    full_ids = {id(w) for w in halves.full.weights}
    front_ids, tail_ids = {id(w) for w in halves.front.weights}, {id(w) for w in halves.tail.weights}
    assert front_ids | tail_ids == full_ids and not front_ids & tail_ids
    assert 0.5 < halves.tail.count_params() / halves.full.count_params() < 0.9


def test_mirrored_activations_are_those_of_mirrored_images(halves, pixels: np.ndarray) -> None:
    plain = extract_features(halves.front, pixels, batch_size=4)
    mirrored = extract_features(halves.front, pixels, mirrored=True, batch_size=4)
    assert plain.dtype == np.float16 and plain.shape == (6, 6, 6, 96)
    direct = np.asarray(halves.front.predict_on_batch(flip_horizontal(pixels).astype(np.float32)))
    np.testing.assert_allclose(mirrored.astype(np.float32), direct, rtol=1e-2, atol=2e-2)
    # ...which is why they are cached: flipping the activations is not the same thing.
    assert np.abs(flip_horizontal(plain).astype(np.float32) - direct).mean() > 0.05


def test_an_unknown_frozen_layer_is_a_user_error() -> None:
    with pytest.raises(UserError, match="has no layer 'block_99_add'"):
        split_model(build_age_model("mobilenet_v2", SIZE, weights=None), "block_99_add")


@pytest.mark.slow
def test_the_feature_cache_profile_trains_and_evaluates_on_real_faces(
    small_faces_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MODEL_REGISTRY", str(tmp_path / "registry"))
    monkeypatch.setenv("CHECKOUT_AGE_CACHE_DIR", str(tmp_path / "cache"))
    status = cli_main(["model", "train", "--faces", str(small_faces_dir), "--profile", "quick",
                       "--size", str(SIZE), "--epochs", "3", "--batch-size", "32",
                       "--version-only"])
    assert status == 0
    assert capsys.readouterr().out == "v0001\n"  # the version alone: a scheduler's XCom
    version = ModelRegistry(tmp_path / "registry").resolve("v0001")
    config = version.config
    assert (config["profile"], config["feature_cache"], config["frozen_until"]) == (
        "quick", True, "block_12_add")
    assert [h["phase"] for h in config["history"]] == ["head", "full", "full", "full"]
    assert config["phase_seconds"]["extract_features_s"] > 0
    assert "block_12_add" in (version.path / "card.md").read_text()
    # It learnt: the test split beats always answering the training mean.
    test = version.metrics["test"]
    assert test["n"] == config["rows"]["test"] > 0
    history = config["history"]
    assert history[-1]["mae"] < history[0]["mae"]
    # The saved file is an ordinary model on raw pixels, and it is what was evaluated.
    model = load_age_model(version.model_path)
    assert model.input_shape == (None, SIZE, SIZE, 3)
    from model.data.dataset import validate_dataset
    from model.data.image_cache import load_images
    from model.data.split import assign_splits

    report = validate_dataset(small_faces_dir)
    split = assign_splits(report.usable)
    test_rows = split[split["split"] == "test"]
    images = load_images(test_rows, SIZE, tmp_path / "cache2", report.fingerprint)
    pred = predict_ages(model, np.asarray(images), batch_size=32)
    mae = float(np.abs(pred - test_rows["real_age"].to_numpy()).mean())
    assert mae == pytest.approx(test["mae"], abs=1e-3)
    guess = float(np.abs(test_rows["real_age"] - split.loc[split["split"] == "train",
                                                             "real_age"].mean()).mean())
    assert test["mae"] < guess, (test["mae"], guess)
    json.dumps(config)  # config.json stays plain JSON


def test_training_batches_are_whole_and_take_mirrored_rows_from_their_copy() -> None:
    from model.training.batches import FaceBatches

    images = np.arange(10 * 4 * 4 * 2, dtype=np.float16).reshape(10, 4, 4, 2)
    mirrored = -images - 1  # stands for "activations of the mirrored picture"
    batches = FaceBatches(images, np.arange(10), batch_size=4, shuffle=True, augment=True,
                          max_shift=0.0, drop_remainder=True, mirrored=mirrored, seed=5)
    assert len(batches) == 2  # 10 rows: the ragged 2 are left out (a different 2 each epoch)
    taken = {"plain": 0, "mirrored": 0}
    for _epoch in range(4):
        for index in range(len(batches)):
            x, y = batches[index]
            assert x.shape == (4, 4, 4, 2) and x.dtype == np.float32
            for row, age in zip(x, y[:, 0].astype(int), strict=True):
                if np.array_equal(row, images[age]):
                    taken["plain"] += 1
                else:  # never a flipped copy of the plain row: the mirrored copy itself
                    np.testing.assert_array_equal(row, mirrored[age])
                    taken["mirrored"] += 1
        batches.on_epoch_end()
    assert taken["plain"] > 5 and taken["mirrored"] > 5
    assert len(FaceBatches(images, np.arange(10), batch_size=4)) == 3  # validation: every row
    with pytest.raises(ValueError, match="mirrored rows"):
        FaceBatches(images, np.arange(10), mirrored=mirrored[:5])
