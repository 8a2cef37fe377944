"""The age model: an ImageNet backbone from `keras.applications` plus a regression head.

The model takes RAW pixels (float32 0..255, (None, S, S, 3)) and returns the age in years
(None, 1): each backbone's input preprocessing is built from plain Keras layers inside the
model, so jobs feed decoded photos as they are and the `.keras` file loads anywhere without
custom objects. Keras 3 only (no `tf.*`): the same code runs under TensorFlow and JAX.

Heads:
- "regression": dropout + one linear unit whose bias starts at a typical age.
- "expectation": DEX-style: softmax over one-year age bins 0..100, output = expected age
  (a fixed, non-trainable linear layer over the bin probabilities).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from model.errors import UserError

HEADS = ("regression", "expectation")
AGE_BINS = np.arange(0, 101, dtype=np.float32)  # expectation head: one bin per year 0..100
RESNET_MEAN_BGR = (103.939, 116.779, 123.68)  # caffe-mode means of keras.applications.resnet


@dataclass(frozen=True)
class BackboneSpec:
    """How to build one `keras.applications` feature extractor."""

    factory: str  # attribute of keras.applications
    preprocess: str  # "tf" (scale to -1..1), "caffe" (BGR minus means) or "none" (inside)
    sizes: tuple[int, ...] | None  # sizes with published ImageNet weights; None = any
    extra: tuple[tuple[str, object], ...] = ()


# Backbones selectable with `--backbone`. Only MobileNetV2's weights are cached on this
# project's machines (KERAS_HOME); the others download their weights where there is internet.
BACKBONES: dict[str, BackboneSpec] = {
    "mobilenet_v2": BackboneSpec("MobileNetV2", "tf", (96, 128, 160, 192, 224)),
    "efficientnet_b0": BackboneSpec("EfficientNetB0", "none", None),
    "efficientnet_v2_b0": BackboneSpec(
        "EfficientNetV2B0", "none", None, (("include_preprocessing", True),)
    ),
    "efficientnet_v2_s": BackboneSpec(
        "EfficientNetV2S", "none", None, (("include_preprocessing", True),)
    ),
    "convnext_tiny": BackboneSpec("ConvNeXtTiny", "none", None, (("include_preprocessing", True),)),
    "resnet50": BackboneSpec("ResNet50", "caffe", None),
}


def _preprocessing_layer(mode: str) -> Callable | None:
    """Plain-Keras equivalent of the backbone's `preprocess_input` (None: nothing to do)."""
    if mode == "tf":
        return keras.layers.Rescaling(scale=1.0 / 127.5, offset=-1.0, name="preprocess")
    if mode == "caffe":
        # RGB -> BGR and mean subtraction as a fixed 1x1 convolution (no custom layer needed).
        layer = keras.layers.Conv2D(3, 1, trainable=False, name="preprocess")
        layer.build((None, None, None, 3))
        kernel = np.zeros((1, 1, 3, 3), dtype=np.float32)
        for out_channel, in_channel in enumerate((2, 1, 0)):
            kernel[0, 0, in_channel, out_channel] = 1.0
        layer.set_weights([kernel, -np.asarray(RESNET_MEAN_BGR, dtype=np.float32)])
        return layer
    return None


def _backbone(name: str, size: int, weights: str | None) -> keras.Model:
    spec = BACKBONES.get(name)
    if spec is None:
        raise UserError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    factory = getattr(keras.applications, spec.factory)
    try:
        return factory(
            include_top=False,
            weights=weights,
            input_shape=(size, size, 3),
            pooling="avg",
            **dict(spec.extra),
        )
    except Exception as exc:  # keras raises a bare Exception when the download fails
        if weights is None:
            raise
        raise UserError(
            f"could not load ImageNet weights for backbone {name!r} at {size}px ({exc}); "
            "put them in the Keras cache (KERAS_HOME/models) or train where the internet is "
            "reachable"
        ) from None


def build_age_model(
    backbone: str = "mobilenet_v2",
    size: int = 160,
    *,
    head: str = "regression",
    dropout: float = 0.2,
    weights: str | None = "imagenet",
    initial_age: float = 33.0,
) -> keras.Model:
    """A fresh age model: raw pixels (None, size, size, 3) -> age in years (None, 1).

    Args:
        backbone: a key of `BACKBONES`.
        size: square input side in pixels.
        head: "regression" or "expectation" (see the module docstring).
        dropout: dropout rate before the head.
        weights: "imagenet" or None (random init, for tests and benchmarks).
        initial_age: the regression head's starting output (speeds up the warm-up).

    Raises:
        UserError: unknown backbone or head, or ImageNet weights that cannot be loaded.

    The current Keras dtype policy applies (mixed_bfloat16 on a GPU); the output layers are
    always float32.
    """
    if head not in HEADS:
        raise UserError(f"unknown head {head!r}; choose one of {', '.join(HEADS)}")
    features_model = _backbone(backbone, size, weights)
    pixels = keras.Input((size, size, 3), dtype="float32", name="pixels")
    preprocess = _preprocessing_layer(BACKBONES[backbone].preprocess)
    x = preprocess(pixels) if preprocess is not None else pixels
    x = features_model(x)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    if head == "regression":
        age = keras.layers.Dense(
            1,
            dtype="float32",
            bias_initializer=keras.initializers.Constant(initial_age),
            name="age",
        )(x)
    else:
        probs = keras.layers.Dense(
            AGE_BINS.size, activation="softmax", dtype="float32", name="age_bins"
        )(x)
        expected = keras.layers.Dense(1, use_bias=False, trainable=False, dtype="float32", name="age")
        age = expected(probs)
        expected.set_weights([AGE_BINS.reshape(-1, 1)])
    return keras.Model(pixels, age, name=f"age_{backbone}_{size}")


def backbone_of(model: keras.Model) -> keras.Model:
    """The nested `keras.applications` feature extractor of an age model."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            return layer
    raise ValueError(f"model {model.name!r} has no nested backbone")


def set_batchnorm_momentum(model: keras.Model, momentum: float) -> int:
    """Set every BatchNormalization layer's momentum (recompile afterwards); returns how many.

    Keras's 0.999 made validation error swing for many epochs after unfreezing MobileNetV2;
    0.9 let it converge (stack-notes).
    """
    count = 0
    for layer in backbone_of(model).layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum
            count += 1
    return count


def load_age_model(path: Path | str) -> keras.Model:
    """Load a saved age model (`.keras`) for inference, without its training state.

    Raises:
        UserError: the file is missing or is not a loadable `.keras` model.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"model file not found: {path}")
    if path.suffix != ".keras":
        raise UserError(f"{path} is not a .keras model file")
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as exc:  # corrupt zip, wrong Keras version, ...
        raise UserError(f"cannot load model {path}: {exc}") from None


def model_input_size(model: keras.Model) -> int:
    """Side in pixels of the square images the model expects."""
    shape = model.input_shape
    if isinstance(shape, list):
        shape = shape[0]
    return int(shape[1])
