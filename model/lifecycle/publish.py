"""Publishing a model version: the one path from a model to the registry.

Every producer of a version calls it: `model train` (`model.training.train`), `model register`
(`model.lifecycle.import_model`, a model trained elsewhere) and `model calibrate`
(`model.evaluation.evaluate`, a copy with a new calibration table). The steps, in order:

1. `document_version` (a freshly evaluated model): save `model.keras`; residual plots of the
   test split; the calibration table fitted on the validation split and measured on the test
   split, with the reliability plot; the policy curve of the test split; `training_images.txt`
   (content hashes the model learnt from); extra artifacts from every `ArtifactProducer` in
   `ARTIFACT_PRODUCERS` (or the `producers` given) when the validation split's images are
   given (the OpenVINO serving artifact, verified against Keras on them); the model card,
   last, so it shows what the producers measured. `model calibrate` assembles its own
   `VersionFiles` instead (same model: it keeps the source version's artifacts).
2. `publish_version`: a copy to `--out`; the figures logged on the producer's MLflow run; the
   version registered from that run (every file of the version stored with it); promotion
   through the gate when asked.

The policy (legal age, challenge age, interval coverage, calibration method) is resolved once from the loaded
settings (`Policy.from_settings`) and passed down, so an environment override reaches the
metrics, the calibration and the card alike.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from model.config import Settings
from model.data.split import SPLITS
from model.evaluation.calibration import CALIBRATION_FILE, calibrate_split, load_calibration
from model.evaluation.policy import calibrated_policy_curve
from model.lifecycle.card import model_card, reliability_plot, residual_plots
from model.lifecycle.registry import (
    MODEL_FILE,
    TRAINING_IMAGES_FILE,
    ModelRegistry,
    PromotionResult,
)

if TYPE_CHECKING:
    import keras
    import pandas as pd

    from model.lifecycle.tracking import TrackingRun


@dataclass(frozen=True)
class Policy:
    """The ages, interval share and calibration method every figure of a version uses."""

    legal_age: int = Settings.legal_age
    challenge_age: int = Settings.challenge_age
    coverage: float = Settings.calibration_coverage
    calibration_method: str = Settings.calibration_method

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        """The policy of the loaded settings (environment overrides included)."""
        return cls(settings.legal_age, settings.challenge_age, settings.calibration_coverage,
                   settings.calibration_method)


@dataclass(frozen=True)
class Gate:
    """The promotion gate: test MAE ceiling and allowed regression against production."""

    max_mae: float = Settings.gate_max_mae
    tolerance: float = Settings.gate_tolerance


DEFAULT_POLICY = Policy()
DEFAULT_GATE = Gate()


@dataclass
class PublishResult:
    """A published version (or only its files, without a registry)."""

    version: str | None
    model_path: Path | None
    metrics: dict
    config: dict
    promotion: PromotionResult | None = None
    run_id: str | None = None


@dataclass
class VersionFiles:
    """A version assembled in `work_dir`, ready to publish."""

    work_dir: Path
    model_path: Path
    metrics: dict
    config: dict
    fingerprint: str
    card: str
    plots: list[Path] = field(default_factory=list)
    extra: dict[str, Path] = field(default_factory=dict)  # {name in the version folder: file}


@dataclass(frozen=True)
class ProducerInputs:
    """What an `ArtifactProducer` is given: the evaluated model and its validation split."""

    model: keras.Model
    model_path: Path  # the saved model.keras
    config: dict  # the version's config.json
    policy: Policy
    valid_images: np.ndarray  # the validation split's images (uint8), in `rows` order
    valid_ages: np.ndarray  # their true ages
    valid_predictions: np.ndarray  # the model's estimates of them (evaluation's, flip TTA)


@dataclass
class ProducedArtifact:
    """What a producer made: files for the version folder and figures for metrics.json."""

    files: dict[str, Path] = field(default_factory=dict)  # {name in the version folder: file}
    metrics: dict = field(default_factory=dict)  # merged into the version's metrics (and card)


# An extra artifact: (inputs, a folder to write in) -> what it made. Producers run before the
# card is written, so the card shows their figures (`metrics["serving"]`: a "Serving" section).
ArtifactProducer = Callable[[ProducerInputs, Path], ProducedArtifact]


def serving_artifact(inputs: ProducerInputs, folder: Path) -> ProducedArtifact:
    """The OpenVINO serving artifact, verified on the validation split (`model.serving`)."""
    from model.serving.artifact import produce_serving_artifact  # OpenVINO: only when publishing

    return produce_serving_artifact(inputs, folder)


ARTIFACT_PRODUCERS: list[ArtifactProducer] = [serving_artifact]


def document_version(model: keras.Model, rows: pd.DataFrame, metrics: dict, predictions: dict,
                     recorded: dict, fingerprint: str, policy: Policy, work_dir: Path, *,
                     valid_images: np.ndarray | None = None,
                     producers: Sequence[ArtifactProducer] | None = None) -> VersionFiles:
    """Step 1: model file, plots, calibration, training hashes, extra artifacts and card.

    Args:
        model: the evaluated model.
        rows: the face rows with their `split`, `real_age` and `sha256`.
        metrics: {"valid": ..., "test": ...} `age_metrics` figures (the test calibration
            figures are added here).
        predictions: {"valid": ..., "test": ...} estimated ages in `rows` order per split.
        recorded: what config.json keeps about the run (needs `faces_dir`, `rows`).
        fingerprint: the face set's fingerprint.
        policy: legal age, challenge age, interval coverage.
        work_dir: an empty folder for the files.
        valid_images: the validation split's images (`rows` order); the producers run only
            with them (a serving artifact is verified on them).
        producers: extra artifact producers (default: `ARTIFACT_PRODUCERS`).
    """
    parts = {name: (rows["split"] == name).to_numpy() for name in SPLITS}
    ages = rows["real_age"].to_numpy(dtype=np.float32)
    model_path = work_dir / MODEL_FILE
    model.save(model_path)
    plots = residual_plots(ages[parts["test"]], predictions["test"], work_dir / "plots",
                           legal_age=policy.legal_age, challenge_age=policy.challenge_age)
    # Fitted on the validation split, measured on the test split.
    calibrated, metrics["test"]["calibration"] = calibrate_split(
        (ages[parts["valid"]], predictions["valid"]), (ages[parts["test"]], predictions["test"]),
        work_dir, legal_age=policy.legal_age, coverage=policy.coverage,
        method=policy.calibration_method,
        source={"split": "valid", "dataset_fingerprint": fingerprint})
    if calibrated is not None:
        plots.append(reliability_plot(metrics["test"]["calibration"], work_dir / "plots"))
    # Minors caught vs adults flagged per rule, on the test split (the card's policy table).
    metrics["test"]["policy_curve"] = calibrated_policy_curve(
        load_calibration(work_dir), ages[parts["test"]], predictions["test"],
        legal_age=policy.legal_age)
    seen = work_dir / TRAINING_IMAGES_FILE  # content hashes the model learnt from
    seen.write_text("\n".join(sorted(rows.loc[~parts["test"], "sha256"])) + "\n")
    extra = {TRAINING_IMAGES_FILE: seen, **({CALIBRATION_FILE: calibrated} if calibrated else {})}
    if valid_images is not None:
        inputs = ProducerInputs(model, model_path, recorded, policy, valid_images,
                                ages[parts["valid"]], np.asarray(predictions["valid"]))
        for number, producer in enumerate(ARTIFACT_PRODUCERS if producers is None
                                          else producers):
            folder = work_dir / f"extra-{number}"
            folder.mkdir()
            made = producer(inputs, folder)
            extra.update(made.files)
            metrics.update(made.metrics)
    dataset = {"faces_dir": recorded["faces_dir"], "fingerprint": fingerprint,
               "rows": recorded["rows"]}
    card = model_card({**recorded, "dataset_fingerprint": fingerprint}, metrics, dataset)
    return VersionFiles(work_dir, model_path, metrics, recorded, fingerprint, card, plots, extra)


def publish_version(files: VersionFiles, *, registry: ModelRegistry | None,
                    run: TrackingRun | None = None, out_dir: Path | None = None,
                    promote: bool = False, gate: Gate = DEFAULT_GATE) -> PublishResult:
    """Step 2: `out_dir`, the run's figures, registration, promotion.

    Args:
        files: the assembled version.
        registry: where to register it; None writes only `out_dir`.
        run: the producer's MLflow run (metrics and the version's files go to it); None: the
            registry makes a run named "register".
        out_dir: also copy the files into this plain folder.
        promote: promote the new version through `gate`.
    """
    result = PublishResult(None, files.model_path, files.metrics, files.config)
    if out_dir is not None:
        result = replace(result, model_path=_write_out(Path(out_dir), files))
    if registry is None:
        return result
    if run is not None:
        run.log_metrics({k: v for k, v in files.metrics.items()
                         if k in ("valid", "test", "serving")})
    version = registry.register(files.model_path, files.metrics, files.config, files.fingerprint,
                                files.card, files.plots, extra_files=files.extra,
                                run_id=run.run_id if run is not None else None)
    resolved = registry.resolve(version)
    result = replace(result, version=version, model_path=resolved.model_path,
                     run_id=resolved.run_id)
    if run is not None:
        run.set_tags({"model_version": version})
    if promote:
        result.promotion = registry.promote(version, max_mae=gate.max_mae,
                                            tolerance=gate.tolerance)
    return result


def _write_out(out_dir: Path, files: VersionFiles) -> Path:
    """Copy a version's files into a plain folder (no registry)."""
    (out_dir / "plots").mkdir(parents=True, exist_ok=True)
    shutil.copy2(files.model_path, out_dir / MODEL_FILE)
    (out_dir / "metrics.json").write_text(json.dumps(files.metrics, indent=2))
    (out_dir / "config.json").write_text(json.dumps(
        {**files.config, "dataset_fingerprint": files.fingerprint}, indent=2))
    (out_dir / "card.md").write_text(files.card)
    for plot in files.plots:
        shutil.copy2(plot, out_dir / "plots" / Path(plot).name)
    for name, source in files.extra.items():
        shutil.copy2(source, out_dir / name)
    return out_dir / MODEL_FILE
