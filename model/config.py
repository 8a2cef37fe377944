"""All configuration in one place.

`Settings` is built once from environment variables (`CHECKOUT_AGE_*`, plus `MODEL_REGISTRY`,
`MLFLOW_TRACKING_URI` and `FACES_DIR`) over the defaults below. This is the only module that reads `os.environ`;
everything below a command's entry point takes plain values, not `Settings`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# Age bands used to report model error: lower bound inclusive, upper exclusive.
EVAL_BANDS: tuple[tuple[str, int, int], ...] = (
    ("<13", 0, 13),
    ("13-17", 13, 18),
    ("18-24", 18, 25),
    ("25-34", 25, 35),
    ("35-44", 35, 45),
    ("45-54", 45, 55),
    ("55-64", 55, 65),
    ("65+", 65, 1000),
)

# Adults flagged by a policy are reported in two groups: young adults (legal age up to under
# this age, 18-24) and older adults (this age and over), whose flags cost more goodwill.
YOUNG_ADULT_UNTIL = 25

# Age groups used in retail reports (the chain's segments).
AGE_GROUPS: tuple[tuple[str, int, int], ...] = (
    ("under 18", 0, 18),
    ("18-24", 18, 25),
    ("25-34", 25, 35),
    ("35-44", 35, 45),
    ("45-54", 45, 55),
    ("55-64", 55, 65),
    ("65+", 65, 1000),
)


def band_of(age: float, bands: tuple[tuple[str, int, int], ...] = EVAL_BANDS) -> str:
    """Name of the band holding `age` (years)."""
    for name, low, high in bands:
        if low <= age < high:
            return name
    return bands[0][0] if age < bands[0][1] else bands[-1][0]


# Training profiles (docs/model.md "Profiles"): the defaults of `model train` for each kind of
# machine. "gpu": full fine-tuning (head warm-up, then every layer). "cpu": the frozen early
# layers' activations are computed once (and once for the mirrored images) and only the last
# blocks and the head are fine-tuned on them; the saved model still takes raw pixels.
# "quick": the cpu logic on a 3,000-face subset at 128 px (the demo). The cpu profile sees half
# the faces as a checkout camera sends them, cut by the serving detector (frames gap 0.18
# years against 0.43), for 10 epochs: 51.9 min on this AVX2 host, where 14 no longer fit an
# hour (bench/results/train_cpu_served_e10.json). `cpu_images_per_s` (training images per
# second on 2 cores, measured on this host: that run, and `model train --profile quick`)
# lets a run that cannot finish in its time limit be refused before it starts.
TRAIN_PROFILES: dict[str, dict[str, object]] = {
    "gpu": {"feature_cache": False, "size": 160, "backbone": "mobilenet_v2", "batch_size": 64,
            "head_epochs": 2, "epochs": 30, "learning_rate": 5e-4, "patience": 6,
            "limit": None, "cpu_images_per_s": 50.0},
    "cpu": {"feature_cache": True, "size": 160, "backbone": "mobilenet_v2", "batch_size": 64,
            "head_epochs": 1, "epochs": 10, "learning_rate": 1e-3, "patience": 4,
            "limit": None, "frozen_until": "block_5_add", "camera_share": 0.5,
            "camera_detect": True, "cpu_images_per_s": 80.0},
    "quick": {"feature_cache": True, "size": 128, "backbone": "mobilenet_v2", "batch_size": 64,
              "head_epochs": 1, "epochs": 8, "learning_rate": 1e-3, "patience": 3,
              "limit": 3000, "frozen_until": "block_12_add", "cpu_images_per_s": 200.0},
}


@dataclass(frozen=True)
class Settings:
    """Every tunable of the system, with production-sensible defaults."""

    home: Path = PROJECT_ROOT / "var"
    data_root: str = str(PROJECT_ROOT / "var" / "data")
    # The MLflow store of runs and versions: the embedded one in this folder (SQLite +
    # artifacts), unless `tracking_uri` names a shared tracking server (model/lifecycle/store.py).
    registry_root: Path = PROJECT_ROOT / "var" / "mlflow"
    tracking_uri: str | None = None
    cache_dir: Path = PROJECT_ROOT / "var" / "cache"
    faces_dir: Path | None = None
    seed: int = 1337

    # Dataset validation.
    min_age: int = 1
    max_age: int = 100
    min_side_px: int = 32
    max_side_px: int = 8000
    max_pixels: int = 40_000_000

    # Training: a named profile (TRAIN_PROFILES below) supplies every training default; these
    # settings override single values of it (None: the profile's value).
    train_profile: str = "cpu"
    image_size: int | None = None
    backbone: str | None = None
    batch_size: int | None = None
    train_max_minutes: int = 180  # a run estimated to need longer is refused up front

    # Promotion gate.
    gate_max_mae: float = 8.0
    gate_tolerance: float = 0.10

    # Daily jobs.
    spark_master: str = "local[*]"
    # `checkout-age job-server`'s URL: the daily jobs run in its warm Spark application (a day's
    # start-up paid once, docs/serving.md); None, or the server not answering: their own.
    job_server: str | None = None
    # Faces per age-model call (flip TTA makes each call twice that). Small batches stay in the
    # CPU's caches: MobileNetV2 160 px on one thread, 8 against 64, OpenVINO 116 vs 98 faces/s
    # and Keras 81 vs 66, the score job's workers 340-400 MB against 740-800
    # (bench/results/bench_serving-batch*.json, bench_score_scale-batch.json).
    score_batch_size: int = 8
    legal_age: int = 18
    challenge_age: int = 25
    # "Minor" tiers of a flag's calibrated P(age < legal_age) (model/evaluation/calibration.py).
    likely_minor_p: float = 0.5  # at least this: "likely minor"
    possible_minor_p: float = 0.2  # at least this: "possible minor"; below: "probably adult"
    calibration_coverage: float = 0.8  # central share of the age_low..age_high interval
    # How the interval and P(minor) table is fitted (model/evaluation/calibration_methods.py):
    # "true_age" holds its coverage for every true age, teenagers included; "predicted_age"
    # (the table of earlier versions) only per estimated age.
    calibration_method: str = "true_age"
    match_window_s: int = 10
    min_support: float = 0.01
    top_n: int = 10  # recommendations per age group and kind
    min_match_rate: float = 0.5
    photo_retention_days: int = 30
    # Delete a day's photos not tied to a flagged restricted sale once its reports are checked.
    photo_minimisation: bool = True
    # Drift alarms (jobs/daily/drift.py, bench/results/bench_drift.json).
    drift_reference_days: int = 28  # the trailing window a day is compared with
    drift_min_photos: int = 100  # fewer scored photos on the day or in the window: no verdict
    drift_max_psi: float = 0.15  # age PSI above this (and above its sampling noise) alarms
    drift_max_no_face_z: float = 4.0  # no-face rate this many standard errors above the window

    # Checkout frames (model/serving/faces.py, docs/frames.md).
    photo_format: str = "auto"  # auto | frames | crops: how the score job treats photos
    crop_max_px: int = 400  # auto: a photo no larger than this on both sides is a face crop
    face_detector: str = "yunet"  # yunet (no TensorFlow) | mtcnn: the serving path's detector
    yunet_width_px: int = 480  # YuNet: frames decoded and detected at this width
    yunet_min_confidence: float = 0.6  # YuNet: detections below this are not faces
    # YuNet's runtime: openvino (its network and weights on OpenVINO, 4x less CPU) | yuface
    # (libfacedetection's own loops); the same faces (model/serving/yunet_net.py).
    yunet_runtime: str = "openvino"
    detect_width_px: int = 480  # MTCNN: frames are scaled to this width for face detection
    min_face_confidence: float = 0.90  # MTCNN: detections below this are not faces
    min_face_px: int = 64  # a customer face narrower than this is quarantined (face_too_small)

    # Serving artifact (model/serving/artifact.py): made when a version is published.
    serving_threads: int = 1  # inference threads per Python worker (one worker per core)
    # OpenVINO pins its inference threads to cores; every worker process picks the same first
    # core, so two workers shared one (bench/results/bench_score_scale.json). Off by default.
    serving_cpu_pinning: bool = False
    serving_max_diff_years: float = 0.05  # fp32 artifact vs Keras on the validation split
    serving_bf16_max_mae_increase: float = 0.05  # bf16 kept only within this MAE (years)
    serving_bf16_max_diff_years: float = 1.0  # ... and with no face further than this from Keras
    max_no_face_rate: float = 0.5  # check-quality fails a day whose frames have no face above it

    @property
    def registry_store(self) -> str:
        """What `ModelRegistry` opens: the tracking URI when set, else the embedded folder."""
        return self.tracking_uri or str(self.registry_root)

    def decode_limits(self) -> dict:
        """The image decoder's limits (`model.serving.images.open_image` keywords)."""
        return {"min_side": self.min_side_px, "max_side": self.max_side_px,
                "max_pixels": self.max_pixels}

    def validation_limits(self) -> dict:
        """`model.data.dataset.validate_dataset` keyword limits: label ages and the decoder's."""
        return {"min_age": self.min_age, "max_age": self.max_age, **self.decode_limits()}

    def with_overrides(self, **changes: object) -> Settings:
        """Copy with some fields replaced (used by command-line flags)."""
        return replace(self, **changes)


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else None


_BOOLEANS = {"1": True, "true": True, "yes": True, "on": True,
             "0": False, "false": False, "no": False, "off": False}


def load_settings() -> Settings:
    """Build `Settings` from the environment over the defaults."""
    base = Settings()
    home = Path(_env("CHECKOUT_AGE_HOME") or base.home)
    changes: dict[str, object] = {
        "home": home,
        "data_root": _env("CHECKOUT_AGE_DATA_ROOT") or str(home / "data"),
        "registry_root": Path(_env("MODEL_REGISTRY") or home / "mlflow"),
        "tracking_uri": _env("MLFLOW_TRACKING_URI"),
        "cache_dir": Path(_env("CHECKOUT_AGE_CACHE_DIR") or home / "cache"),
    }
    faces = _env("FACES_DIR")
    if faces:
        changes["faces_dir"] = Path(faces)
    numeric = {
        "seed": int,
        "min_age": int,
        "max_age": int,
        "image_size": int,
        "batch_size": int,
        "train_max_minutes": int,
        "gate_max_mae": float,
        "gate_tolerance": float,
        "score_batch_size": int,
        "legal_age": int,
        "challenge_age": int,
        "likely_minor_p": float,
        "possible_minor_p": float,
        "calibration_coverage": float,
        "match_window_s": int,
        "min_support": float,
        "top_n": int,
        "min_match_rate": float,
        "photo_retention_days": int,
        "crop_max_px": int,
        "yunet_width_px": int,
        "yunet_min_confidence": float,
        "serving_threads": int,
        "serving_max_diff_years": float,
        "serving_bf16_max_mae_increase": float,
        "serving_bf16_max_diff_years": float,
        "detect_width_px": int,
        "min_face_px": int,
        "min_face_confidence": float,
        "max_no_face_rate": float,
        "drift_reference_days": int,
        "drift_min_photos": int,
        "drift_max_psi": float,
        "drift_max_no_face_z": float,
    }
    for name, cast in numeric.items():
        raw = _env(f"CHECKOUT_AGE_{name.upper()}")
        if raw is not None:
            changes[name] = cast(raw)
    for name in ("photo_minimisation", "serving_cpu_pinning"):
        raw = _env(f"CHECKOUT_AGE_{name.upper()}")
        if raw is not None:
            if raw.lower() not in _BOOLEANS:
                raise ValueError(f"CHECKOUT_AGE_{name.upper()}={raw!r}: use one of "
                                 + ", ".join(sorted(_BOOLEANS)))
            changes[name] = _BOOLEANS[raw.lower()]
    for name in ("backbone", "spark_master", "job_server", "photo_format", "train_profile",
                 "calibration_method", "face_detector", "yunet_runtime"):
        raw = _env(f"CHECKOUT_AGE_{name.upper()}")
        if raw is not None:
            changes[name] = raw
    return replace(base, **changes)


def disable_mlflow_telemetry() -> None:
    """MLflow 3 sends usage telemetry to the internet unless told not to; this system never
    calls out (and a machine without internet waits on it), so the default is off."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
