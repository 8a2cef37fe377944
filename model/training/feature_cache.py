"""The CPU profile's trick: compute the frozen early layers once, fine-tune only the rest.

An age model (`model.net.build_age_model`) is cut after one backbone layer (`frozen_until`,
e.g. MobileNetV2's `block_12_add`) into two models that SHARE their layers with it:
- `front`: raw pixels -> that layer's activations (never trained: ImageNet weights);
- `tail`: those activations -> age (the last backbone blocks and the head).
`extract_features` runs `front` once over every image (and once over the mirrored training
images, the flip augmentation), as float16. Training `tail` on those arrays trains the full
model's own layers in place, so the full model (one ordinary `.keras` file taking raw pixels)
is ready when the tail is: nothing is copied or stitched afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np

from model.errors import UserError
from model.serving.net import backbone_of
from model.training.augment import flip_horizontal


@dataclass
class SplitModel:
    """The two halves of an age model (they share layers with `full`)."""

    full: keras.Model
    front: keras.Model
    tail: keras.Model
    tail_backbone: keras.Model  # the backbone layers inside `tail` (frozen in the head phase)


def split_model(model: keras.Model, frozen_until: str) -> SplitModel:
    """Cut `model` after backbone layer `frozen_until` (module docstring).

    Raises:
        UserError: the backbone has no such layer.
    """
    backbone = backbone_of(model)
    try:
        cut = backbone.get_layer(frozen_until).output
    except ValueError:
        raise UserError(f"backbone {backbone.name!r} has no layer {frozen_until!r} to freeze "
                        "up to") from None
    front_backbone = keras.Model(backbone.input, cut, name="frozen_backbone")
    tail_backbone = keras.Model(cut, backbone.output, name="trained_backbone")
    after = model.layers[model.layers.index(backbone) + 1:]  # the head, a chain of layers
    before = model.layers[1:model.layers.index(backbone)]  # input preprocessing
    pixels = keras.Input(model.input_shape[1:], name="pixels")
    x = pixels
    for layer in before:
        x = layer(x)
    front = keras.Model(pixels, front_backbone(x), name="front")
    features = keras.Input(tuple(cut.shape[1:]), name="features")
    y = tail_backbone(features)
    for layer in after:
        y = layer(y)
    return SplitModel(model, front, keras.Model(features, y, name="tail"), tail_backbone)


def extract_features(front: keras.Model, images: np.ndarray, *, mirrored: bool = False,
                     batch_size: int = 128,
                     transform: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """float16 activations of `front` for uint8 images (optionally mirrored left-right, and
    each batch first passed through `transform`, e.g. checkout-camera views)."""
    out = None
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size]
        if transform is not None:
            batch = transform(batch)
        if mirrored:
            batch = flip_horizontal(batch)
        values = np.asarray(front.predict_on_batch(batch.astype(np.float32)))
        if out is None:
            out = np.empty((len(images), *values.shape[1:]), dtype=np.float16)
        out[start:start + len(batch)] = values
    if out is None:
        raise ValueError("no images to extract features from")
    return out
