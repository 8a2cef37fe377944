"""Training the age model: validated faces -> fine-tuned Keras model -> registry version.

`train_model` runs the whole thing: validate the face set, split it by content hash, load
decoded images from the cache, refuse a run that cannot finish in its time limit, fit,
evaluate the test split with flip TTA, write the model card and plots, register, optionally
promote. `fit_age_model` is the fitting part alone, on arrays (also used by
`bench/train_gpu.py`). Two ways to fit, chosen by the profile (`model.profiles`):
- full fine-tuning (profile "gpu"): head-only warm-up on a frozen backbone, then every layer;
- feature cache (profiles "cpu", "quick"): the frozen early layers run once per image
  (`model.feature_cache`), then the same two phases train only the last blocks and the head.
Either way the result is one model taking raw pixels. With `config.teachers` the training
targets are blended with registered versions' estimates first (`model.training.distill`).

Keras 3 only (no `tf.*`): runs under TensorFlow on the CPU and JAX on a GPU, where it uses
mixed bfloat16 precision (the output layers stay float32; the saved model is float32).
XLA compilation is used only on an accelerator: on the CPU it made the real fit loop 0.64 of
plain `train_on_batch` (bench/results/bench_train_loop.json).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from model.data.split import SPLITS
from model.errors import UserError
from model.evaluation.evaluate import evaluate_splits
from model.lifecycle.publish import (
    DEFAULT_GATE,
    DEFAULT_POLICY,
    Gate,
    Policy,
    PublishResult,
    document_version,
    publish_version,
)
from model.lifecycle.registry import ModelRegistry
from model.lifecycle.tracking import tracked_run
from model.serving.net import backbone_of, build_age_model, set_batchnorm_momentum
from model.training.augment import camera_views
from model.training.batches import FaceBatches, age_weights
from model.training.heap import KeepHeap
from model.training.profiles import TrainConfig, estimate_minutes

__all__ = ["FitResult", "TrainConfig", "fit_age_model", "train_model"]

log = logging.getLogger(__name__)

MIN_TRAIN_ROWS = 20  # below this a run is a mistake, not a model
MONITOR = "val_mae"


@dataclass
class FitResult:
    """A fitted model (best weights restored) and its per-epoch history."""

    model: keras.Model
    history: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    seconds: float = 0.0
    dtype_policy: str = "float32"
    phases: dict[str, float] = field(default_factory=dict)  # seconds per phase
    stopped_by_time_limit: bool = False


def accelerator_present() -> bool:
    """True when the Keras backend sees a GPU or TPU (backend-agnostic device listing)."""
    try:
        devices = keras.distribution.list_devices()
    except Exception:  # a backend without device listing: assume CPU
        return False
    return any(not str(device).lower().startswith("cpu") for device in devices)


def _precision_policy(mode: str, accelerator: bool) -> str:
    if mode not in ("auto", "on", "off"):
        raise UserError(f"mixed precision must be auto, on or off, not {mode!r}")
    use = mode == "on" or (mode == "auto" and accelerator)
    return "mixed_bfloat16" if use else "float32"


class EpochLog(keras.callbacks.Callback):
    """Logs one line per epoch with the time left, and keeps timings in a history list.

    `images_per_s` is training rows per second of epoch wall time (validation included).
    The time left assumes the remaining epochs (up to `last_epoch`) take as long as the
    median epoch of this phase so far (fine-tuning epochs cost more than head-only ones, so
    the head phase's figure is low); early stopping may end sooner.
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
        mine = sorted(h["seconds"] for h in self.history if h["phase"] == self.phase)
        left = mine[len(mine) // 2] * (self.last_epoch - epoch - 1)
        log.info("epoch %d/%d (%s): loss %.3f mae %.3f val_mae %.3f, %.0f s, %.0f img/s, "
                 "about %d min %02d s left", epoch + 1, self.last_epoch, self.phase,
                 entry.get("loss", np.nan), entry.get("mae", np.nan),
                 entry.get(MONITOR, np.nan), seconds, entry["images_per_s"], left // 60,
                 left % 60)


class TimeLimit(keras.callbacks.Callback):
    """Ends training after the epoch that crosses a wall-clock deadline (`time.monotonic`);
    the best weights are still restored and the model evaluated, registered and documented."""

    def __init__(self, deadline: float | None) -> None:
        super().__init__()
        self.deadline = deadline
        self.stopped = False

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            log.warning("time limit reached after epoch %d: training stops here", epoch + 1)
            self.stopped = True
            self.model.stop_training = True


def compile_for_training(model: keras.Model, learning_rate: object, config: TrainConfig,
                         jit_compile: object = None) -> None:
    """AdamW (no decay on biases and BatchNorm), Huber loss, MAE metric.

    `jit_compile` None: XLA only on a GPU/TPU (module docstring: slower fit loop on the CPU).
    """
    optimizer = keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=config.weight_decay)
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.Huber(delta=config.huber_delta),
        metrics=[keras.metrics.MeanAbsoluteError(name="mae")],
        jit_compile=accelerator_present() if jit_compile is None else jit_compile,
    )


def _fine_tuning_schedule(config: TrainConfig, steps_per_epoch: int) -> object:
    """Warm-up from a tenth of the peak, then cosine decay to `min_learning_rate_share`."""
    steps = steps_per_epoch * config.epochs
    warmup = min(int(steps_per_epoch * config.warmup_epochs), steps // 2)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=config.learning_rate * 0.1, decay_steps=steps - warmup,
        alpha=config.min_learning_rate_share, warmup_target=config.learning_rate,
        warmup_steps=warmup)


def _fit_two_phases(trained: keras.Model, frozen_part: keras.Model, train: FaceBatches,
                    valid: FaceBatches, config: TrainConfig, work_dir: Path,
                    callbacks: tuple[keras.callbacks.Callback, ...]) -> tuple[list[dict], int | None]:
    """Head-only epochs with `frozen_part` frozen, then fine-tuning with it trainable.

    Phase 2 lowers BatchNorm momentum to `bn_momentum`, uses AdamW + warm-up + cosine decay,
    early stopping on validation MAE with best-weight restore and a `.keras` checkpoint of
    the best epoch in `work_dir`. Returns (per-epoch history, best epoch counted across phases).
    """
    history: list[dict] = []
    total = config.head_epochs + config.epochs
    rows = len(train) * train.batch_size
    callbacks = (KeepHeap(), *callbacks)  # freed activations reused, not faulted in (heap.py)
    if config.head_epochs:
        frozen_part.trainable = False
        compile_for_training(trained, config.head_learning_rate, config)
        trained.fit(train, validation_data=valid, epochs=config.head_epochs, verbose=0,
                    shuffle=False, callbacks=[EpochLog("head", rows, total, history), *callbacks])
        if trained.stop_training:
            return history, None
    if not config.epochs:
        return history, None
    frozen_part.trainable = True
    set_batchnorm_momentum(trained, config.bn_momentum)
    compile_for_training(trained, _fine_tuning_schedule(config, len(train)), config)
    stopper = keras.callbacks.EarlyStopping(monitor=MONITOR, patience=config.patience,
                                            restore_best_weights=True)
    checkpoint = keras.callbacks.ModelCheckpoint(
        Path(work_dir) / "checkpoint.keras", monitor=MONITOR, save_best_only=True)
    trained.fit(train, validation_data=valid, initial_epoch=config.head_epochs, epochs=total,
                verbose=0, shuffle=False,
                callbacks=[EpochLog("full", rows, total, history), stopper, checkpoint,
                           *callbacks])
    return history, stopper.best_epoch + 1  # keras counts from epoch 0, across phases


def _camera_view(config: TrainConfig):  # noqa: ANN202 - a ServedView or None
    """The camera views' cut: around the serving detector's box (`camera_detect`), or None
    (`augment.camera_view`: the crop brought back whole)."""
    if not (config.camera_detect and config.camera_share > 0):
        return None
    from model.config import load_settings
    from model.training.served_view import FRAME_WIDTH_PX, ServedView

    # The score job's own detection settings (CHECKOUT_AGE_YUNET_* included), not the defaults.
    settings = load_settings()
    return ServedView(detect_scale=settings.yunet_width_px / FRAME_WIDTH_PX,
                      min_confidence=settings.yunet_min_confidence)


def _log_served_views(view) -> None:  # noqa: ANN001 - a ServedView or None
    if view is not None and view.seen:
        log.info("camera views cut around the serving detector's box: %d, %d of them (%.1f %%) "
                 "missed by the detector and kept whole", view.seen, view.missed,
                 100 * view.missed / view.seen)


def _batches(train_x: np.ndarray, train_y: np.ndarray, valid_x: np.ndarray,
             valid_y: np.ndarray, config: TrainConfig,
             train_mirrored: np.ndarray | None = None) -> tuple[FaceBatches, FaceBatches]:
    train = FaceBatches(train_x, train_y, batch_size=config.batch_size, shuffle=True,
                        augment=True, seed=config.seed, max_shift=config.max_shift,
                        drop_remainder=True, mirrored=train_mirrored, workers=config.workers,
                        camera_share=config.camera_share,
                        # Only pixel batches make camera views here (mirrored rows are cached).
                        camera_view=_camera_view(config) if train_mirrored is None else None,
                        weights=age_weights(train_y, config.age_balance)
                        if config.age_balance > 0 else None)
    valid = FaceBatches(valid_x, valid_y, batch_size=config.batch_size, workers=config.workers)
    return train, valid


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

    Full fine-tuning, or (`config.feature_cache`) the tail on cached activations of the
    frozen layers up to `config.frozen_until` (module docstring). The returned model is
    uncompiled and float32 (see `_inference_copy`). `callbacks` are added to both phases
    (e.g. `TimeLimit`).
    """
    keras.utils.set_random_seed(config.seed)
    policy = _precision_policy(config.mixed_precision, accelerator_present())
    keras.config.set_dtype_policy(policy)
    started = time.perf_counter()
    phases: dict[str, float] = {}
    try:
        model = build_age_model(config.backbone, config.size, head=config.head,
                                dropout=config.dropout, weights=config.weights,
                                initial_age=float(np.mean(train_y)))
        if config.feature_cache:
            from model.training.feature_cache import extract_features, split_model

            parts = split_model(model, config.frozen_until or "")
            trained, frozen_part = parts.tail, parts.tail_backbone
            # The mirrored copies are the epoch's other view of each face (picked half the
            # time): camera views go there, twice as often as they should be seen overall.
            views, view = None, _camera_view(config)
            if config.camera_share > 0:
                rng = np.random.default_rng((config.seed, 2))
                views = partial(camera_views, rng=rng, share=min(1.0, 2 * config.camera_share),
                                view=view)
            train_m = extract_features(parts.front, train_x, mirrored=True, transform=views)
            _log_served_views(view)
            train_x = extract_features(parts.front, train_x)
            valid_x = extract_features(parts.front, valid_x)
            phases["extract_features_s"] = round(time.perf_counter() - started, 1)
            log.info("activations of %d images (+ %d mirrored) after %s: %s float16, %.0f s",
                     len(train_x) + len(valid_x), len(train_m), config.frozen_until,
                     train_x.shape[1:], phases["extract_features_s"])
        else:
            trained, frozen_part, train_m = model, backbone_of(model), None
        train, valid = _batches(train_x, train_y, valid_x, valid_y, config, train_m)
        fitting = time.perf_counter()
        history, best_epoch = _fit_two_phases(trained, frozen_part, train, valid, config,
                                              work_dir, callbacks)
        phases["fit_s"] = round(time.perf_counter() - fitting, 1)
    finally:
        keras.config.set_dtype_policy("float32")
    stopped = any(getattr(c, "stopped", False) for c in callbacks)
    return FitResult(_inference_copy(model, config), history, best_epoch,
                     time.perf_counter() - started, policy, phases, stopped)


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


def _training_rows(faces_dir: Path, config: TrainConfig, cache_dir: Path,
                   validation_limits: dict | None) -> tuple[object, pd.DataFrame, dict]:
    """(validation report, usable rows with their split, rows per split); too few: UserError."""
    from model.data.dataset import validate_dataset  # dataset layer (helper modules)
    from model.data.split import assign_splits

    report = validate_dataset(Path(faces_dir), cache_dir=cache_dir, **(validation_limits or {}))
    rows = _subset(assign_splits(report.usable), config.limit, config.seed)
    counts = rows["split"].value_counts().reindex(list(SPLITS), fill_value=0)
    counts = {name: int(counts[name]) for name in SPLITS}
    if counts["train"] < MIN_TRAIN_ROWS or counts["valid"] == 0 or counts["test"] == 0:
        raise UserError(f"{faces_dir}: too few usable faces to train (train {counts['train']}, "
                        f"valid {counts['valid']}, test {counts['test']}; need >= "
                        f"{MIN_TRAIN_ROWS} train and some valid and test rows)")
    log.info("training on %s: %s usable of %d rows (train %d, valid %d, test %d)", faces_dir,
             len(report.usable), report.rows, counts["train"], counts["valid"], counts["test"])
    return report, rows, counts


def check_time_limit(config: TrainConfig, rows: dict[str, int],
                     max_minutes: float | None) -> float:
    """Estimated minutes of the run on this machine's CPU; UserError when over `max_minutes`.

    Skipped (0) on a GPU/TPU, where the CPU figures do not apply.
    """
    if max_minutes is None or accelerator_present():
        return 0.0
    needed = estimate_minutes(config, rows)
    if needed > max_minutes:
        raise UserError(
            f"profile {config.profile!r} ({'feature cache' if config.feature_cache else 'full'} "
            f"fine-tuning, {config.size} px, {config.head_epochs} + {config.epochs} epochs, "
            f"{rows['train']} training faces) needs about {needed:.0f} min on this CPU, more "
            f"than the limit of {max_minutes:.0f} min: use --profile cpu, fewer --epochs or a "
            "--limit, a GPU worker, or raise CHECKOUT_AGE_TRAIN_MAX_MINUTES")
    log.info("estimated %.0f min of %.0f allowed (profile %s)", needed, max_minutes,
             config.profile)
    return needed


def _distilled_targets(config: TrainConfig, registry: ModelRegistry, rows: pd.DataFrame,
                       images: np.ndarray, cache_dir: Path, fingerprint: str) -> tuple:
    """The training split's targets blended with `config.teachers`' estimates, and a
    record of each teacher (`model.training.distill`)."""
    from model.training.distill import teacher_targets

    started = time.perf_counter()
    targets, teachers = teacher_targets(registry, config.teachers, config.distill_weight, rows,
                                        images, config.size, cache_dir, fingerprint,
                                        config.batch_size)
    log.info("distilling from %s (weight %.2f): their estimates of %d training faces in "
             "%.0f s; training-face MAE %s", ", ".join(t.version for t in teachers),
             config.distill_weight, len(targets), time.perf_counter() - started,
             ", ".join(f"{t.version} {t.train_mae:.2f}" for t in teachers))
    return targets, teachers


def _recorded(config: TrainConfig, fit: FitResult, counts: dict, faces_dir: Path,
              command: str | None, estimate: float) -> dict:
    """What config.json keeps about the run."""
    return {
        **asdict(config),
        "epochs_run": len([h for h in fit.history if h["phase"] == "full"]),
        "best_epoch": fit.best_epoch,
        "train_seconds": round(fit.seconds, 1),
        "phase_seconds": fit.phases,
        "estimated_minutes": round(estimate, 1),
        "stopped_by_time_limit": fit.stopped_by_time_limit,
        "history": fit.history,
        "rows": counts,
        "faces_dir": str(faces_dir),
        "backend": keras.backend.backend(),
        "dtype_policy": fit.dtype_policy,
        "keras_version": keras.__version__,
        "command": command,
    }


def train_model(
    faces_dir: Path,
    config: TrainConfig,
    *,
    cache_dir: Path,
    registry_store: str | Path | None,
    out_dir: Path | None = None,
    promote: bool = False,
    gate: Gate = DEFAULT_GATE,
    policy: Policy = DEFAULT_POLICY,
    validation_limits: dict | None = None,
    command: str | None = None,
    max_minutes: float | None = None,
) -> PublishResult:
    """Validate, split, fit, evaluate and publish one model (module docstring).

    With a registry the whole run is an MLflow run named "train": params (the training
    config, seeds, dataset fingerprint, git commit) up front, per-epoch figures after the fit,
    test figures and the version's files at publication; a run that fails ends FAILED.

    Args:
        faces_dir: labelled face set (`labels.csv` + `final_files/`).
        config: training settings (`model.training.profiles.train_config`).
        cache_dir: decoded-image and validation caches; checkpoints go in a temp dir here.
        registry_store: the MLflow store to log the run and register the version in
            (`Settings.registry_store`); None to skip both.
        out_dir: also write model.keras, metrics, config, card and plots here.
        promote: promote the new version through `gate` (needs a registry).
        gate: the promotion gate (`model.lifecycle.registry`).
        policy: legal age, challenge age and interval coverage of every figure.
        validation_limits: `validate_dataset` keyword limits (ages, sizes).
        command: the command line that started the run (recorded in the card).
        max_minutes: refuse a run estimated to need longer on the CPU, and stop training
            once it has run that long (best weights kept, the model still evaluated).

    Raises:
        UserError: too few faces, or a run that cannot finish within `max_minutes`.
    """
    from model.data.image_cache import load_images

    started = time.monotonic()
    report, rows, counts = _training_rows(faces_dir, config, cache_dir, validation_limits)
    estimate = check_time_limit(config, counts, max_minutes)
    registry = None if registry_store is None else ModelRegistry(
        registry_store, cache_dir=Path(cache_dir) / "models")
    if config.teachers and registry is None:
        raise UserError("distillation needs the registry its teachers are versions of: "
                        "drop --no-register")
    params = {**asdict(config), "dataset_fingerprint": report.fingerprint,
              "faces_dir": str(faces_dir), "rows_train": counts["train"],
              "rows_valid": counts["valid"], "rows_test": counts["test"],
              "legal_age": policy.legal_age, "challenge_age": policy.challenge_age,
              "calibration_coverage": policy.coverage, "backend": keras.backend.backend(),
              "teachers": ",".join(config.teachers) or None}
    with (tracked_run(registry.store, "train", params=params, tags={"command": command})
          if registry is not None else contextlib.nullcontext()) as run:
        images = load_images(rows, config.size, cache_dir, report.fingerprint)
        parts = {name: (rows["split"] == name).to_numpy() for name in SPLITS}
        ages = rows["real_age"].to_numpy(dtype=np.float32)
        train_targets, teachers, teaching_s = ages[parts["train"]], [], 0.0
        if config.teachers:
            teaching = time.perf_counter()
            train_targets, teachers = _distilled_targets(config, registry, rows, images,
                                                         cache_dir, report.fingerprint)
            teaching_s = round(time.perf_counter() - teaching, 1)
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        work_dir = Path(tempfile.mkdtemp(prefix="train-", dir=cache_dir))
        try:
            deadline = None if max_minutes is None else started + 60 * max_minutes * 0.9  # eval
            fit = fit_age_model(np.asarray(images[parts["train"]]), train_targets,
                                np.asarray(images[parts["valid"]]), ages[parts["valid"]], config,
                                work_dir, callbacks=(TimeLimit(deadline),))
            if run is not None:
                run.log_history(fit.history)
            metrics, predictions = evaluate_splits(fit.model, images, rows, config.batch_size,
                                                   legal_age=policy.legal_age,
                                                   challenge_age=policy.challenge_age)
            recorded = _recorded(config, fit, counts, faces_dir, command, estimate)
            if teachers:
                recorded["teacher_records"] = [asdict(t) for t in teachers]
                recorded["phase_seconds"]["teacher_estimates_s"] = teaching_s
            files = document_version(fit.model, rows, metrics, predictions, recorded,
                                     report.fingerprint, policy, work_dir,
                                     valid_images=np.asarray(images[parts["valid"]]))
            return publish_version(files, registry=registry, run=run, out_dir=out_dir,
                                   promote=promote, gate=gate)
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)
