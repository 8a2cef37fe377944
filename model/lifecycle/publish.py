"""Publishing a model version: the one path from a model to the registry.

Every producer of a version calls it: `model train` (`model.training.train`), `model register`
(`model.lifecycle.import_model`, a model trained elsewhere) and `model calibrate`
(`model.evaluation.evaluate`, a copy with a new calibration table). The steps, in order:

1. `document_version` (a freshly evaluated model): save `model.keras`; residual plots of the
   test split; the calibration table fitted on the validation split and measured on the test
   split, with the reliability plot; the policy curve of the test split; `training_images.txt` (content hashes the model learnt
   from); the model card. `model calibrate` assembles its own `VersionFiles` instead.
2. `publish_version`: extra artifacts from every `ArtifactProducer` in `ARTIFACT_PRODUCERS`
   (or the `producers` given), e.g. an exported serving format; a copy to `--out`; the
   figures logged on the producer's MLflow run; the version registered from that run;
   promotion through the gate when asked.

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


# An extra artifact: (model.keras, the version's config, a folder to write in) ->
# {name in the version folder: file written}. An exported serving format plugs in here.
ArtifactProducer = Callable[[Path, dict, Path], dict[str, Path]]
ARTIFACT_PRODUCERS: list[ArtifactProducer] = []


def document_version(model: keras.Model, rows: pd.DataFrame, metrics: dict, predictions: dict,
                     recorded: dict, fingerprint: str, policy: Policy,
                     work_dir: Path) -> VersionFiles:
    """Step 1: model file, plots, calibration, training hashes and card, in `work_dir`.

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
    dataset = {"faces_dir": recorded["faces_dir"], "fingerprint": fingerprint,
               "rows": recorded["rows"]}
    card = model_card({**recorded, "dataset_fingerprint": fingerprint}, metrics, dataset)
    return VersionFiles(work_dir, model_path, metrics, recorded, fingerprint, card, plots, extra)


def publish_version(files: VersionFiles, *, registry: ModelRegistry | None,
                    run: TrackingRun | None = None, out_dir: Path | None = None,
                    promote: bool = False, gate: Gate = DEFAULT_GATE,
                    producers: Sequence[ArtifactProducer] | None = None) -> PublishResult:
    """Step 2: extra artifacts, `out_dir`, the run's figures, registration, promotion.

    Args:
        files: the assembled version.
        registry: where to register it; None writes only `out_dir`.
        run: the producer's MLflow run (metrics and the version's files go to it); None: the
            registry makes a run named "register".
        out_dir: also copy the files into this plain folder.
        promote: promote the new version through `gate`.
        producers: extra artifact producers (default: `ARTIFACT_PRODUCERS`).
    """
    extra_dir = files.work_dir / "extra"
    for producer in ARTIFACT_PRODUCERS if producers is None else producers:
        extra_dir.mkdir(exist_ok=True)
        files.extra.update(producer(files.model_path, files.config, extra_dir))
    result = PublishResult(None, files.model_path, files.metrics, files.config)
    if out_dir is not None:
        result = replace(result, model_path=_write_out(Path(out_dir), files))
    if registry is None:
        return result
    if run is not None:
        run.log_metrics({k: v for k, v in files.metrics.items() if k in ("valid", "test")})
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
