"""Training the age model: validated faces -> fine-tuned Keras model -> registry version.

`train_model` runs the whole thing: validate the face set, split it by content hash, load
decoded images from the cache, refuse a run that cannot finish in its time limit, fit,
evaluate the test split with flip TTA, write the model card and plots, register, optionally
promote. `fit_age_model` is the fitting part alone, on arrays (also used by
`bench/train_gpu.py`). Two ways to fit, chosen by the profile (`model.profiles`):
- full fine-tuning (profile "gpu"): head-only warm-up on a frozen backbone, then every layer;
- feature cache (profiles "cpu", "quick"): the frozen early layers run once per image
  (`model.feature_cache`), then the same two phases train only the last blocks and the head.
Either way the result is one model taking raw pixels.

Keras 3 only (no `tf.*`): runs under TensorFlow on the CPU and JAX on a GPU, where it uses
mixed bfloat16 precision (the output layers stay float32; the saved model is float32).
XLA compilation is used only on an accelerator: on the CPU it made the real fit loop 0.64 of
plain `train_on_batch` (bench/results/bench_train_loop.json).
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

from model.config import Settings
from model.errors import UserError
from model.evaluation.calibration import CALIBRATION_FILE, calibrate_split
from model.evaluation.metrics import age_metrics
from model.lifecycle.card import model_card, reliability_plot, residual_plots
from model.lifecycle.registry import ModelRegistry, PromotionResult
from model.serving.net import backbone_of, build_age_model, set_batchnorm_momentum
from model.serving.predict import predict_ages
from model.training.batches import FaceBatches
from model.training.profiles import TrainConfig, estimate_minutes

__all__ = ["FitResult", "TrainConfig", "TrainResult", "document_and_register",
           "evaluate_splits", "fit_age_model", "train_model"]

log = logging.getLogger(__name__)

MIN_TRAIN_ROWS = 20  # below this a run is a mistake, not a model
MONITOR = "val_mae"
SPLITS = ("train", "valid", "test")


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


def _batches(train_x: np.ndarray, train_y: np.ndarray, valid_x: np.ndarray,
             valid_y: np.ndarray, config: TrainConfig,
             train_mirrored: np.ndarray | None = None) -> tuple[FaceBatches, FaceBatches]:
    train = FaceBatches(train_x, train_y, batch_size=config.batch_size, shuffle=True,
                        augment=True, seed=config.seed, max_shift=config.max_shift,
                        drop_remainder=True, mirrored=train_mirrored, workers=config.workers)
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
            train_m = extract_features(parts.front, train_x, mirrored=True)
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


def evaluate_splits(model: keras.Model, images: np.ndarray, rows: pd.DataFrame,
                    batch_size: int) -> tuple[dict, dict]:
    """(metrics, predictions) of the valid and test splits of `rows` (its `split`), flip TTA."""
    ages = rows["real_age"].to_numpy(dtype=np.float32)
    gender = rows["gender"].to_numpy() if "gender" in rows else None
    metrics, predictions = {}, {}
    for name in ("valid", "test"):
        mask = (rows["split"] == name).to_numpy()
        predictions[name] = predict_ages(model, images[mask], batch_size=batch_size)
        metrics[name] = age_metrics(ages[mask], predictions[name],
                                    gender[mask] if gender is not None else None)
    return metrics, predictions


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
    registry_root: Path | None,
    out_dir: Path | None = None,
    promote: bool = False,
    max_mae: float = Settings.gate_max_mae,
    tolerance: float = Settings.gate_tolerance,
    validation_limits: dict | None = None,
    command: str | None = None,
    max_minutes: float | None = None,
) -> TrainResult:
    """Validate, split, fit, evaluate, document and register one model (module docstring).

    Args:
        faces_dir: labelled face set (`labels.csv` + `final_files/`).
        config: training settings (`model.profiles.train_config`).
        cache_dir: decoded-image and validation caches; checkpoints go in a temp dir here.
        registry_root: registry to add the version to; None to skip registering.
        out_dir: also write model.keras, metrics, config, card and plots here.
        promote: promote the new version through the gate (needs a registry).
        max_mae, tolerance: the promotion gate (see `model.registry`).
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
    images = load_images(rows, config.size, cache_dir, report.fingerprint)
    parts = {name: (rows["split"] == name).to_numpy() for name in SPLITS}
    ages = rows["real_age"].to_numpy(dtype=np.float32)
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    work_dir = Path(tempfile.mkdtemp(prefix="train-", dir=cache_dir))
    deadline = None if max_minutes is None else started + 60 * max_minutes * 0.9  # 10 %: eval
    fit = fit_age_model(np.asarray(images[parts["train"]]), ages[parts["train"]],
                        np.asarray(images[parts["valid"]]), ages[parts["valid"]], config,
                        work_dir, callbacks=(TimeLimit(deadline),))
    metrics, predictions = evaluate_splits(fit.model, images, rows, config.batch_size)
    recorded = _recorded(config, fit, counts, faces_dir, command, estimate)
    try:
        return document_and_register(fit.model, rows, metrics, predictions, recorded, report,
                                     work_dir, out_dir=out_dir, registry_root=registry_root,
                                     promote=promote, max_mae=max_mae, tolerance=tolerance,
                                     valid_images=np.asarray(images[parts["valid"]]))
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def document_and_register(model: keras.Model, rows: pd.DataFrame, metrics: dict,
                          predictions: dict, recorded: dict, report: object, work_dir: Path, *,
                          out_dir: Path | None, registry_root: Path | None,
                          promote: bool = False, max_mae: float = Settings.gate_max_mae,
                          tolerance: float = Settings.gate_tolerance,
                          valid_images: np.ndarray | None = None) -> TrainResult:
    """Save the model, plots, calibration, serving artifact and card in `work_dir`; copy them
    to `out_dir`; register (and maybe promote) the version. `recorded` is the version's
    config.json; `valid_images` (the validation split's images) verify the serving artifact,
    which is not made without them."""
    parts = {name: (rows["split"] == name).to_numpy() for name in SPLITS}
    ages = rows["real_age"].to_numpy(dtype=np.float32)
    model_path = work_dir / "model.keras"
    model.save(model_path)
    plots = residual_plots(ages[parts["test"]], predictions["test"], work_dir / "plots")
    # Calibration (issue 12): fitted on the validation split, measured on the test split.
    calibrated, metrics["test"]["calibration"] = calibrate_split(
        (ages[parts["valid"]], predictions["valid"]), (ages[parts["test"]], predictions["test"]),
        work_dir, legal_age=metrics["test"].get("legal_age", Settings.legal_age),
        coverage=Settings.calibration_coverage,
        source={"split": "valid", "dataset_fingerprint": report.fingerprint})
    if calibrated is not None:
        plots.append(reliability_plot(metrics["test"]["calibration"], work_dir / "plots"))
    seen = work_dir / "training_images.txt"  # content hashes the model learnt from
    seen.write_text("\n".join(sorted(rows.loc[~parts["test"], "sha256"])) + "\n")
    kept = {"training_images.txt": seen,
            **({CALIBRATION_FILE: calibrated} if calibrated is not None else {})}
    if valid_images is not None:
        kept.update(_serving_artifact(model, valid_images, ages[parts["valid"]],
                                      predictions["valid"], metrics, work_dir / "serving"))
    dataset = {"faces_dir": recorded["faces_dir"], "fingerprint": report.fingerprint,
               "rows": recorded["rows"]}
    card = model_card({**recorded, "dataset_fingerprint": report.fingerprint}, metrics, dataset)
    result = TrainResult(None, model_path, metrics, recorded)
    if out_dir is not None:
        result = replace(result, model_path=_write_out(out_dir, work_dir, metrics, recorded,
                                                       report.fingerprint, card))
    if registry_root is not None:
        registry = ModelRegistry(registry_root)
        version = registry.register(model_path, metrics, recorded, report.fingerprint, card,
                                    plots, extra_files=kept)
        result = replace(result, version=version,
                         model_path=registry.resolve(version).model_path)
        if promote:
            result.promotion = registry.promote(version, max_mae=max_mae, tolerance=tolerance)
    return result


def _serving_artifact(model: keras.Model, images: np.ndarray, truth: np.ndarray,
                      keras_ages: np.ndarray, metrics: dict, out_dir: Path) -> dict[str, Path]:
    """Build and verify the version's serving artifact; its files to keep (none if refused).

    Its manifest goes into `metrics["serving"]` (metrics.json and the card)."""
    from model.serving.artifact import artifact_files, build_artifact

    manifest = build_artifact(
        model, out_dir, images, truth, keras_ages,
        max_diff_years=Settings.serving_max_diff_years,
        bf16_max_mae_increase=Settings.serving_bf16_max_mae_increase,
        legal_age=metrics["test"].get("legal_age", Settings.legal_age),
        challenge_age=metrics["test"].get("challenge_age", Settings.challenge_age))
    metrics["serving"] = manifest
    if not manifest["verified"]:
        log.warning("serving artifact differs from Keras by up to %.3f years on the validation "
                    "split: not kept, the version scores through Keras",
                    manifest["max_abs_diff_vs_keras_years"])
        return {}
    return artifact_files(out_dir)


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
    for name in ("training_images.txt", CALIBRATION_FILE):
        if (work_dir / name).is_file():
            shutil.copy2(work_dir / name, out_dir / name)
    return out_dir / "model.keras"
