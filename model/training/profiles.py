"""Training profiles: the settings of one training run, resolved from `Settings`.

`TrainConfig` holds every knob of a run (recorded in the version's config.json). It is built
by `train_config`: a named profile of `model.config.TRAIN_PROFILES` ("gpu", "cpu", "quick")
gives the defaults, the `Settings` overrides (`CHECKOUT_AGE_IMAGE_SIZE`, `_BACKBONE`,
`_BATCH_SIZE`, `_SEED`) replace single values, and command-line flags win over both.
`estimate_minutes` says how long a run needs on a 2-core CPU, so a run that cannot finish in
its time limit is refused before it starts. No Keras here: the CLI and DAG helpers stay light.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from model.config import TRAIN_PROFILES, Settings
from model.errors import UserError

PROFILE_NAMES = tuple(TRAIN_PROFILES)
_PROFILE_ONLY = ("cpu_images_per_s",)  # profile facts that are not knobs of a run
# Work of one run in "training-image equivalents" on the CPU (measured ratios of step costs):
_VALID_COST = 0.35  # a validation image (forward only) against a training image
_EXTRACT_COST = 0.6  # frozen-layer activations of one image, against a tail training image
_EVAL_COST = 1.2  # one full-model, flip-TTA test/valid image, against a tail training image
# A camera view cut around the serving detector's box (`camera_detect`): the frame drawn, JPEG
# round trip, YuNet at 480 px. The served-views runs' activations took 560-565 s for 16,922
# views, about 270 s of it the activations alone (bench/results/train_cpu_served_e10.json).
_CAMERA_DETECT_COST = 1.4


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of one training run (recorded in the version's config.json).

    The first block comes from a profile (see `train_config`); the rest are model
    hyperparameters shared by every profile.
    """

    profile: str
    feature_cache: bool  # fine-tune only the layers after `frozen_until`, on cached activations
    size: int
    backbone: str
    batch_size: int
    head_epochs: int  # backbone (or tail) frozen: only the head learns
    epochs: int  # fine-tuning (upper bound: early stopping)
    learning_rate: float  # peak fine-tuning learning rate
    patience: int
    limit: int | None = None  # random subset of usable rows, for quick runs
    frozen_until: str | None = None  # last frozen layer (feature_cache); None: the whole backbone
    seed: int = Settings.seed
    head: str = "regression"
    weights: str | None = "imagenet"
    head_learning_rate: float = 3e-3
    min_learning_rate_share: float = 0.01  # cosine decay floor, share of learning_rate
    warmup_epochs: float = 1.0
    weight_decay: float = 1e-4
    huber_delta: float = 3.0
    dropout: float = 0.2
    max_shift: float = 0.1
    # Chance that a training face is seen, in an epoch, as a checkout camera delivers it
    # (low resolution, blur, exposure, white balance, JPEG: `augment.camera_view`).
    camera_share: float = 0.0
    # Camera views cut as the score job cuts a face: found by the serving detector in a small
    # frame and cropped around its box (`served_view.ServedView`), not brought back whole.
    camera_detect: bool = False
    # Loss weight of a face: (share of training faces in its 5-year age band) ** -age_balance,
    # scaled to mean 1. 0 weighs every face alike; 0.5 lifts the sparse old and teen bands.
    age_balance: float = 0.0
    # Distillation (`model.training.distill`): registered versions whose mean estimate is
    # blended into each training face's target with `distill_weight`. () trains on labels alone.
    teachers: tuple[str, ...] = ()
    distill_weight: float = 0.5
    bn_momentum: float = 0.9
    mixed_precision: str = "auto"  # "auto" (on when a GPU/TPU is present), "on", "off"
    workers: int = 1  # PyDataset worker threads


_FIELDS = {f.name for f in fields(TrainConfig)}


def train_config(settings: Settings, profile: str | None = None, **flags: object) -> TrainConfig:
    """The run's `TrainConfig`: profile defaults < `settings` overrides < `flags` (None = unset).

    Raises:
        UserError: unknown profile or flag.
    """
    name = profile or settings.train_profile
    if name not in TRAIN_PROFILES:
        raise UserError(f"unknown training profile {name!r}; choose one of "
                        f"{', '.join(PROFILE_NAMES)}")
    unknown = set(flags) - _FIELDS
    if unknown:
        raise UserError(f"unknown training option(s): {', '.join(sorted(unknown))}")
    values = {k: v for k, v in TRAIN_PROFILES[name].items() if k not in _PROFILE_ONLY}
    from_settings = {"size": settings.image_size, "backbone": settings.backbone,
                     "batch_size": settings.batch_size, "seed": settings.seed}
    values.update({k: v for k, v in from_settings.items() if v is not None})
    values.update({k: v for k, v in flags.items() if v is not None})
    values["teachers"] = tuple(values.get("teachers") or ())
    weight = values.get("distill_weight", 0.5)
    if not 0.0 <= weight <= 1.0:
        raise UserError(f"distillation weight must be within 0..1, not {weight}")
    if values.get("camera_detect") and not values.get("camera_share"):
        if flags.get("camera_detect"):
            raise UserError("--camera-detect cuts camera views: it needs --camera-share above 0")
        values["camera_detect"] = False  # the profile's cut, and no camera views to cut
    return TrainConfig(profile=name, **values)


def estimate_minutes(config: TrainConfig, rows: dict[str, int]) -> float:
    """Wall minutes a run needs on a quiet 2-core CPU (the profile's measured throughput).

    Args:
        config: the run.
        rows: faces per split, {"train": n, "valid": n, "test": n}.
    """
    profile = TRAIN_PROFILES.get(config.profile, TRAIN_PROFILES["gpu"])
    rate = float(profile["cpu_images_per_s"]) * (int(profile["size"]) / config.size) ** 2
    train, valid, test = rows.get("train", 0), rows.get("valid", 0), rows.get("test", 0)
    work = (config.head_epochs + config.epochs) * (train + _VALID_COST * valid)
    pixels_cost = 3 if config.feature_cache else 1  # full model on pixels: ~3x a tail step
    if config.feature_cache:
        work += _EXTRACT_COST * (2 * train + valid)
        if config.camera_detect:  # the mirrored copies carry the camera views, twice the share
            work += _CAMERA_DETECT_COST * min(1.0, 2 * config.camera_share) * train
    work += _EVAL_COST * pixels_cost * (valid + test + len(config.teachers) * train)
    return work / rate / 60
