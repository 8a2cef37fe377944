"""Training the age model: validated faces -> fine-tuned Keras model -> registry version.

`train_model` runs the whole thing: validate the face set, split it by content hash, load
decoded images from the cache, fit (head-only warm-up, then full fine-tuning), evaluate the
test split with flip TTA, write the model card and plots, register, optionally promote.
`fit_age_model` is the fitting part alone, on arrays (also used by `bench/train_gpu.py`).

Keras 3 only (no `tf.*`): runs under TensorFlow on the CPU and JAX on a GPU, where it uses
mixed bfloat16 precision (the output layers stay float32; the saved model is float32).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from model.batches import FaceBatches
from model.card import model_card, residual_plots
from model.errors import UserError
from model.metrics import age_metrics
from model.net import backbone_of, build_age_model, set_batchnorm_momentum
from model.predict import predict_ages
from model.registry import ModelRegistry, PromotionResult

log = logging.getLogger(__name__)

MIN_TRAIN_ROWS = 20  # below this a run is a mistake, not a model
MONITOR = "val_mae"


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of one training run (recorded in the version's config.json)."""

    size: int = 160
    backbone: str = "mobilenet_v2"
    head: str = "regression"
    weights: str | None = "imagenet"
    head_epochs: int = 2  # backbone frozen
    epochs: int = 30  # full fine-tuning (upper bound: early stopping)
    batch_size: int = 64
    seed: int = 1337
    head_learning_rate: float = 3e-3
    learning_rate: float = 5e-4
    min_learning_rate_share: float = 0.01  # cosine decay floor, share of learning_rate
    warmup_epochs: float = 1.0
    weight_decay: float = 1e-4
    huber_delta: float = 3.0
    patience: int = 6
    dropout: float = 0.2
    max_shift: float = 0.1
    bn_momentum: float = 0.9
    limit: int | None = None  # random subset of usable rows, for quick runs
    mixed_precision: str = "auto"  # "auto" (on when a GPU/TPU is present), "on", "off"
    workers: int = 1  # PyDataset worker threads


@dataclass
class FitResult:
    """A fitted model (best weights restored) and its per-epoch history."""

    model: keras.Model
    history: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    seconds: float = 0.0
    dtype_policy: str = "float32"


@dataclass
class TrainResult:
    """Outcome of `train_model`."""

    version: str | None
    model_path: Path | None
    metrics: dict
    config: dict
    promotion: PromotionResult | None = None


def accelerator_present() -> bool:
    """True when the Keras backend sees a GPU or TPU (backend-agnostic device listing)."""
    try:
        devices = keras.distribution.list_devices()
    except Exception:  # a backend without device listing: assume CPU
        return False
    return any(not str(device).lower().startswith("cpu") for device in devices)


def _precision_policy(mode: str) -> str:
    if mode not in ("auto", "on", "off"):
        raise UserError(f"mixed precision must be auto, on or off, not {mode!r}")
    use = mode == "on" or (mode == "auto" and accelerator_present())
    return "mixed_bfloat16" if use else "float32"


class EpochLog(keras.callbacks.Callback):
    """Logs one line per epoch (progress output) and keeps timings in a history list.

    `images_per_s` is training rows per second of epoch wall time (validation included).
    """

    def __init__(self, phase: str, rows: int, last_epoch: int, history: list[dict]) -> None:
        super().__init__()
        self.phase, self.rows, self.last_epoch, self.history = phase, rows, last_epoch, history
        self._started = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        seconds = time.perf_counter() - self._started
        entry = {"epoch": epoch + 1, "phase": self.phase, "seconds": round(seconds, 2),
                 "images_per_s": round(self.rows / seconds, 1),
                 **{k: round(float(v), 4) for k, v in (logs or {}).items()
                    if isinstance(v, int | float | np.floating)}}
        self.history.append(entry)
        log.info("epoch %d/%d (%s): loss %.3f mae %.3f val_mae %.3f, %.1f s, %.0f img/s",
                 epoch + 1, self.last_epoch, self.phase, entry.get("loss", np.nan),
                 entry.get("mae", np.nan), entry.get(MONITOR, np.nan), seconds,
                 entry["images_per_s"])


def compile_for_training(model: keras.Model, learning_rate: object, config: TrainConfig,
                         jit_compile: object = "auto") -> None:
    """AdamW (no decay on biases and BatchNorm), Huber loss, MAE metric."""
    optimizer = keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=config.weight_decay)
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.Huber(delta=config.huber_delta),
        metrics=[keras.metrics.MeanAbsoluteError(name="mae")],
        jit_compile=jit_compile,
    )


def fit_age_model(
    train_x: np.ndarray,
    train_y: np.ndarray,
    valid_x: np.ndarray,
    valid_y: np.ndarray,
    config: TrainConfig,
    work_dir: Path,
    callbacks: tuple[keras.callbacks.Callback, ...] = (),
) -> FitResult:
    """Build and fit the age model on uint8 image arrays; the best epoch's weights are kept.

    Phase 1 trains the head on a frozen backbone; phase 2 unfreezes everything with
    BatchNorm momentum lowered to `bn_momentum`, AdamW + warm-up + cosine decay, early
    stopping on validation MAE with best-weight restore and a `.keras` checkpoint of the best
    epoch in `work_dir`. The returned model is uncompiled and float32 (see `_inference_copy`).
    `callbacks` are added to both phases (e.g. a time budget).
    """
    keras.utils.set_random_seed(config.seed)
    policy = _precision_policy(config.mixed_precision)
    keras.config.set_dtype_policy(policy)
    started = time.perf_counter()
    try:
        mean_age = float(np.mean(train_y))
        model = build_age_model(config.backbone, config.size, head=config.head,
                                dropout=config.dropout, weights=config.weights,
                                initial_age=mean_age)
        train = FaceBatches(train_x, train_y, batch_size=config.batch_size, shuffle=True,
                            augment=True, seed=config.seed, max_shift=config.max_shift,
                            workers=config.workers)
        valid = FaceBatches(valid_x, valid_y, batch_size=config.batch_size, workers=config.workers)
        history: list[dict] = []
        total = config.head_epochs + config.epochs
        if config.head_epochs:
            backbone_of(model).trainable = False
            compile_for_training(model, config.head_learning_rate, config)
            model.fit(train, validation_data=valid, epochs=config.head_epochs, verbose=0,
                      callbacks=[EpochLog("head", len(train_x), total, history), *callbacks])
        best_epoch = None
        if config.epochs:
            backbone_of(model).trainable = True
            set_batchnorm_momentum(model, config.bn_momentum)
            steps = len(train) * config.epochs
            warmup = min(int(len(train) * config.warmup_epochs), steps // 2)
            schedule = keras.optimizers.schedules.CosineDecay(
                initial_learning_rate=config.learning_rate * 0.1, decay_steps=steps - warmup,
                alpha=config.min_learning_rate_share, warmup_target=config.learning_rate,
                warmup_steps=warmup)
            compile_for_training(model, schedule, config)
            stopper = keras.callbacks.EarlyStopping(monitor=MONITOR, patience=config.patience,
                                                    restore_best_weights=True)
            checkpoint = keras.callbacks.ModelCheckpoint(
                Path(work_dir) / "checkpoint.keras", monitor=MONITOR, save_best_only=True)
            model.fit(train, validation_data=valid, initial_epoch=config.head_epochs,
                      epochs=total, verbose=0,
                      callbacks=[EpochLog("full", len(train_x), total, history), stopper,
                                 checkpoint, *callbacks])
            best_epoch = stopper.best_epoch + 1  # keras counts from epoch 0, across phases
    finally:
        keras.config.set_dtype_policy("float32")
    model = _inference_copy(model, config)
    return FitResult(model, history, best_epoch, time.perf_counter() - started, policy)


def _inference_copy(model: keras.Model, config: TrainConfig) -> keras.Model:
    """The same weights in a fresh, uncompiled float32 model.

    float32 so the saved file runs well on CPUs too (training may be mixed bfloat16);
    uncompiled so `.keras` files hold no optimizer state (a third of the size).
    """
    copy = build_age_model(config.backbone, config.size, head=config.head,
                           dropout=config.dropout, weights=None)
    copy.set_weights(model.get_weights())
    return copy


def _subset(rows: pd.DataFrame, limit: int | None, seed: int) -> pd.DataFrame:
    if limit is None or limit >= len(rows):
        return rows
    return rows.sample(n=limit, random_state=seed).sort_index()


def train_model(
    faces_dir: Path,
    config: TrainConfig,
    *,
    cache_dir: Path,
    registry_root: Path | None,
    out_dir: Path | None = None,
    promote: bool = False,
    max_mae: float = 8.0,
    tolerance: float = 0.10,
    validation_limits: dict | None = None,
    command: str | None = None,
) -> TrainResult:
    """Validate, split, fit, evaluate, document and register one model (module docstring).

    Args:
        faces_dir: labelled face set (`labels.csv` + `final_files/`).
        config: training settings.
        cache_dir: decoded-image and validation caches; checkpoints go in a temp dir here.
        registry_root: registry to add the version to; None to skip registering.
        out_dir: also write model.keras, metrics, config, card and plots here.
        promote: promote the new version through the gate (needs a registry).
        max_mae, tolerance: the promotion gate (see `model.registry`).
        validation_limits: `validate_dataset` keyword limits (ages, sizes).
        command: the command line that started the run (recorded in the card).
    """
    from model.dataset import validate_dataset  # dataset layer (helper modules)
    from model.image_cache import load_images
    from model.split import assign_splits

    report = validate_dataset(Path(faces_dir), cache_dir=cache_dir, **(validation_limits or {}))
    rows = _subset(assign_splits(report.usable), config.limit, config.seed)
    counts = rows["split"].value_counts().reindex(["train", "valid", "test"], fill_value=0)
    if counts["train"] < MIN_TRAIN_ROWS or counts["valid"] == 0 or counts["test"] == 0:
        raise UserError(f"{faces_dir}: too few usable faces to train (train {counts['train']}, "
                        f"valid {counts['valid']}, test {counts['test']}; need >= "
                        f"{MIN_TRAIN_ROWS} train and some valid and test rows)")
    log.info("training on %s: %s usable of %d rows (train %d, valid %d, test %d)", faces_dir,
             len(report.usable), report.rows, counts["train"], counts["valid"], counts["test"])
    images = load_images(rows, config.size, cache_dir, report.fingerprint)
    parts = {name: (rows["split"] == name).to_numpy() for name in ("train", "valid", "test")}
    ages = rows["real_age"].to_numpy(dtype=np.float32)
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    work_dir = Path(tempfile.mkdtemp(prefix="train-", dir=cache_dir))
    fit = fit_age_model(images[parts["train"]], ages[parts["train"]], images[parts["valid"]],
                        ages[parts["valid"]], config, work_dir)
    gender = rows["gender"].to_numpy() if "gender" in rows else None
    metrics, predictions = {}, {}
    for name in ("valid", "test"):
        predictions[name] = predict_ages(fit.model, images[parts[name]],
                                         batch_size=config.batch_size)
        metrics[name] = age_metrics(ages[parts[name]], predictions[name],
                                    gender[parts[name]] if gender is not None else None)
    recorded = {
        **asdict(config),
        "epochs_run": len([h for h in fit.history if h["phase"] == "full"]),
        "best_epoch": fit.best_epoch,
        "train_seconds": round(fit.seconds, 1),
        "history": fit.history,
        "rows": {name: int(counts[name]) for name in ("train", "valid", "test")},
        "faces_dir": str(faces_dir),
        "backend": keras.backend.backend(),
        "dtype_policy": fit.dtype_policy,
        "keras_version": keras.__version__,
        "command": command,
    }
    model_path = work_dir / "model.keras"
    fit.model.save(model_path)
    plots = residual_plots(ages[parts["test"]], predictions["test"], work_dir / "plots")
    dataset = {"faces_dir": str(faces_dir), "fingerprint": report.fingerprint, "rows": recorded["rows"]}
    card = model_card({**recorded, "dataset_fingerprint": report.fingerprint}, metrics, dataset)
    seen = work_dir / "training_images.txt"  # content hashes the model learnt from
    seen.write_text("\n".join(sorted(rows.loc[~parts["test"], "sha256"])) + "\n")
    result = TrainResult(None, model_path, metrics, recorded)
    if out_dir is not None:
        result = replace(result, model_path=_write_out(out_dir, work_dir, metrics, recorded,
                                                       report.fingerprint, card))
    if registry_root is not None:
        registry = ModelRegistry(registry_root)
        version = registry.register(model_path, metrics, recorded, report.fingerprint, card,
                                    plots, extra_files={"training_images.txt": seen})
        resolved = registry.resolve(version)
        result = replace(result, version=version, model_path=resolved.model_path)
        if promote:
            result.promotion = registry.promote(version, max_mae=max_mae, tolerance=tolerance)
    shutil.rmtree(work_dir, ignore_errors=True)
    return result


def _write_out(out_dir: Path, work_dir: Path, metrics: dict, config: dict, fingerprint: str,
               card: str) -> Path:
    """Copy a run's files into a plain folder (no registry)."""
    out_dir = Path(out_dir)
    (out_dir / "plots").mkdir(parents=True, exist_ok=True)
    shutil.copy2(work_dir / "model.keras", out_dir / "model.keras")
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (out_dir / "config.json").write_text(json.dumps({**config, "dataset_fingerprint": fingerprint},
                                                    indent=2))
    (out_dir / "card.md").write_text(card)
    for plot in (work_dir / "plots").glob("*.png"):
        shutil.copy2(plot, out_dir / "plots" / plot.name)
    shutil.copy2(work_dir / "training_images.txt", out_dir / "training_images.txt")
    return out_dir / "model.keras"
