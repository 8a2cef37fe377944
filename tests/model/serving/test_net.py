"""The age network: shapes, in-model preprocessing, heads, save/load, backend neutrality."""

from __future__ import annotations

import re
from pathlib import Path

import keras
import numpy as np
import pytest

from model.errors import UserError
from model.serving.net import (
    AGE_BINS,
    _preprocessing_layer,
    backbone_of,
    build_age_model,
    load_age_model,
    model_input_size,
    set_batchnorm_momentum,
)
from model.serving.predict import predict_ages

MODEL_DIR = Path(__file__).resolve().parents[3] / "model"


@pytest.fixture(scope="module")
def small_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    return build_age_model("mobilenet_v2", 64, weights=None)


def test_raw_pixels_in_age_out(small_model: keras.Model) -> None:
    assert small_model.input_shape == (None, 64, 64, 3)
    assert small_model.output_shape == (None, 1)
    assert model_input_size(small_model) == 64
    assert small_model.layers[-1].dtype_policy.compute_dtype == "float32"
    images = np.random.default_rng(0).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    ages = predict_ages(small_model, images, batch_size=2)
    assert ages.shape == (5,) and ages.dtype == np.float32
    # untrained: the head's bias starts every estimate near the typical age
    assert np.all(np.abs(ages - 33.0) < 15)


def test_flip_tta_averages_the_mirrored_estimate(small_model: keras.Model) -> None:
    images = np.random.default_rng(1).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    plain = predict_ages(small_model, images, flip_tta=False)
    mirrored = predict_ages(small_model, images[:, :, ::-1].copy(), flip_tta=False)
    np.testing.assert_allclose(predict_ages(small_model, images), (plain + mirrored) / 2,
                               rtol=1e-5, atol=1e-4)


def test_preprocessing_matches_keras_applications() -> None:
    pixels = np.random.default_rng(2).uniform(0, 255, (2, 4, 4, 3)).astype(np.float32)
    tf_mode = keras.ops.convert_to_numpy(_preprocessing_layer("tf")(pixels))
    np.testing.assert_allclose(
        tf_mode, keras.applications.mobilenet_v2.preprocess_input(pixels.copy()), atol=1e-5)
    caffe = keras.ops.convert_to_numpy(_preprocessing_layer("caffe")(pixels))
    np.testing.assert_allclose(
        caffe, keras.applications.resnet50.preprocess_input(pixels.copy()), atol=1e-3)
    assert _preprocessing_layer("none") is None


def test_expectation_head_outputs_the_expected_bin_age() -> None:
    model = build_age_model("mobilenet_v2", 32, head="expectation", weights=None)
    probs_layer, age_layer = model.get_layer("age_bins"), model.get_layer("age")
    assert not age_layer.trainable
    np.testing.assert_array_equal(age_layer.get_weights()[0][:, 0], AGE_BINS)
    images = np.random.default_rng(3).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    features = keras.Model(model.input, probs_layer.output)
    probs = keras.ops.convert_to_numpy(features(images.astype(np.float32)))
    expected = probs @ AGE_BINS
    np.testing.assert_allclose(predict_ages(model, images, flip_tta=False), expected, rtol=1e-4)


def test_save_and_load_round_trip(small_model: keras.Model, tmp_path: Path) -> None:
    path = tmp_path / "age.keras"
    small_model.save(path)
    loaded = load_age_model(path)
    images = np.random.default_rng(4).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    np.testing.assert_allclose(predict_ages(loaded, images), predict_ages(small_model, images),
                               rtol=1e-6)


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        load_age_model(tmp_path / "missing.keras")
    other = tmp_path / "weights.h5"
    other.write_bytes(b"x")
    with pytest.raises(UserError, match="not a .keras"):
        load_age_model(other)
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"not a zip archive")
    with pytest.raises(UserError, match="cannot load model .*broken.keras"):
        load_age_model(broken)


def test_unknown_choices_are_user_errors() -> None:
    with pytest.raises(UserError, match="unknown backbone 'vgg99'"):
        build_age_model("vgg99", 64, weights=None)
    with pytest.raises(UserError, match="unknown head"):
        build_age_model("mobilenet_v2", 64, head="ordinal", weights=None)


def test_unreachable_weights_are_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # A closed local proxy makes the weight download fail at once, internet or not.
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with pytest.raises(UserError, match="could not load ImageNet weights for backbone 'resnet50'"):
        build_age_model("resnet50", 64)


def test_imagenet_mobilenet_weights_load_from_the_keras_cache() -> None:
    model = build_age_model("mobilenet_v2", 96)  # needs KERAS_HOME (tests/conftest.py)
    first_conv = backbone_of(model).get_layer("Conv1").get_weights()[0]
    assert first_conv.shape == (3, 3, 3, 32) and float(np.abs(first_conv).sum()) > 1.0


def test_batchnorm_momentum_lowered(small_model: keras.Model) -> None:
    count = set_batchnorm_momentum(small_model, 0.9)
    assert count > 30  # MobileNetV2 has one BN per convolution
    bns = [layer for layer in backbone_of(small_model).layers
           if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(bns) == count and all(layer.momentum == 0.9 for layer in bns)


def test_model_code_is_keras_only() -> None:
    """No TensorFlow in model/ (it must run under JAX too), no Spark or Airflow either."""
    # `tf.` as code (not inside backticks in a docstring), or any import of the three.
    banned = re.compile(
        r"^\s*(import|from)\s+(tensorflow|pyspark|airflow)\b|(?<![`\w.])tf\.\w", re.M)
    offenders = [
        f"{path.relative_to(MODEL_DIR)}: {match.group(0).strip()}"
        for path in sorted(MODEL_DIR.rglob("*.py"))
        for match in banned.finditer(path.read_text())
    ]
    assert offenders == []
