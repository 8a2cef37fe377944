"""Evaluating a model on any labelled face folder, honestly.

Which rows are scored (`split`):
- "auto" (default): if the folder is the model's own training set (same dataset fingerprint)
  only its test split, the rows the model never saw; for any other folder every usable row
  except images the model learnt from (matched by content hash against the version's
  `training_images.txt`, when it has one), so a copy of training photos cannot flatter it.
- "test": the folder's test split (content-hash split, the same rule as training).
- "all": every usable row, seen or not (the number seen in training is still reported).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from model.config import Settings
from model.errors import UserError
from model.evaluation.calibration import (
    CALIBRATION_FILE,
    evaluate_calibration,
    fit_calibration,
    load_calibration,
)
from model.evaluation.metrics import age_metrics
from model.evaluation.policy import calibrated_policy_curve
from model.lifecycle.registry import TRAINING_IMAGES_FILE, ModelRegistry, ModelVersion

if TYPE_CHECKING:
    from model.lifecycle.publish import Policy

log = logging.getLogger(__name__)

SPLIT_CHOICES = ("auto", "test", "all")


def evaluate_splits(model: object, images: np.ndarray, rows: pd.DataFrame, batch_size: int, *,
                    legal_age: int = Settings.legal_age,
                    challenge_age: int = Settings.challenge_age) -> tuple[dict, dict]:
    """(metrics, predictions) of the valid and test splits of `rows` (its `split`), flip TTA.

    `legal_age` and `challenge_age` set the minors' figures (the caller's policy).
    """
    from model.serving.predict import predict_ages

    ages = rows["real_age"].to_numpy(dtype=np.float32)
    gender = rows["gender"].to_numpy() if "gender" in rows else None
    metrics, predictions = {}, {}
    for name in ("valid", "test"):
        mask = (rows["split"] == name).to_numpy()
        predictions[name] = predict_ages(model, images[mask], batch_size=batch_size)
        metrics[name] = age_metrics(ages[mask], predictions[name],
                                    gender[mask] if gender is not None else None,
                                    legal_age=legal_age, challenge_age=challenge_age)
    return metrics, predictions


def training_hashes(version: ModelVersion) -> set[str]:
    """Content hashes of the images a registered version was trained/validated on."""
    if version.path is None:
        return set()
    path = version.path / TRAINING_IMAGES_FILE
    if not path.is_file():
        return set()
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}


def select_rows(
    usable: pd.DataFrame, fingerprint: str, version: ModelVersion, split: str
) -> tuple[pd.DataFrame, str, int]:
    """Rows to score under the rule in the module docstring.

    Returns:
        (rows, rule actually applied, number of rows the model saw in training among `usable`).
    """
    from model.data.split import assign_splits

    if split not in SPLIT_CHOICES:
        raise UserError(f"split must be one of {', '.join(SPLIT_CHOICES)}, not {split!r}")
    seen_hashes = training_hashes(version)
    seen = usable["sha256"].isin(seen_hashes).to_numpy()
    own_set = fingerprint == version.config.get("dataset_fingerprint")
    if split == "test" or (split == "auto" and own_set):
        rows = assign_splits(usable)
        return rows[rows["split"] == "test"].drop(columns="split"), "test", int(seen.sum())
    if split == "all":
        return usable, "all", int(seen.sum())
    return usable[~seen], "unseen", int(seen.sum())


def evaluate_model(
    model_ref: str,
    faces_dir: Path,
    *,
    registry_store: str | Path,
    cache_dir: Path,
    split: str = "auto",
    batch_size: int = Settings.score_batch_size,
    flip_tta: bool = True,
    validation_limits: dict | None = None,
    legal_age: int = Settings.legal_age,
    challenge_age: int = Settings.challenge_age,
) -> dict:
    """Validate `faces_dir`, score the chosen rows with the model, return its metrics.

    Args:
        model_ref: "production", a version id or a `.keras` path (see `ModelRegistry.resolve`).
        faces_dir: labelled face folder (`labels.csv` + `final_files/`).
        registry_store: the registry that resolves `model_ref`.
        cache_dir: validation and decoded-image caches.
        split: "auto", "test" or "all" (module docstring).
        batch_size: images per forward pass.
        flip_tta: average with mirrored images.
        validation_limits: `validate_dataset` keyword limits.

    Returns:
        `age_metrics` figures plus `model`, `model_path`, `faces_dir`, `fingerprint`,
        `split` (the rule applied), `rows_usable`, `rows_seen_in_training`, and
        `calibration`: `model.calibration.calibration_metrics` of the version's calibration
        table on these rows (interval coverage overall and by band, Brier score, reliability
        bins), None for a version without `calibration.json`; `policy_curve`:
        `model.evaluation.policy.policy_curve` on these rows (minors caught vs adults flagged
        for "estimated age < T" and, when calibrated, "P(under legal age) >= p").
    """
    from model.data.dataset import validate_dataset
    from model.data.image_cache import load_images
    from model.serving.net import load_age_model
    from model.serving.predict import predict_ages

    registry = ModelRegistry(registry_store, cache_dir=Path(cache_dir) / "models")
    version = registry.resolve(model_ref)
    report = validate_dataset(Path(faces_dir), cache_dir=cache_dir, **(validation_limits or {}))
    rows, rule, seen = select_rows(report.usable, report.fingerprint, version, split)
    if rows.empty:
        raise UserError(f"{faces_dir}: no rows to evaluate under split {rule!r} "
                        f"({len(report.usable)} usable, {seen} seen in training)")
    model = load_age_model(version.model_path)
    size = version.image_size
    images = load_images(rows, size, cache_dir, report.fingerprint)
    log.info("evaluating %s on %d rows of %s (split %s, %d px)", version.version, len(rows),
             faces_dir, rule, size)
    pred = predict_ages(model, np.asarray(images), batch_size=batch_size, flip_tta=flip_tta)
    gender = rows["gender"].to_numpy() if "gender" in rows else None
    calibration = load_calibration(version.path)
    true = rows["real_age"].to_numpy()
    result = {
        "model": version.version,
        "model_path": str(version.model_path),
        "faces_dir": str(faces_dir),
        "fingerprint": report.fingerprint,
        "split": rule,
        "rows_usable": len(report.usable),
        "rows_seen_in_training": seen,
        **age_metrics(true, pred, gender, legal_age=legal_age, challenge_age=challenge_age),
        # Intervals and P(minor) from the version's calibration.json; None without one.
        "calibration": (evaluate_calibration(calibration, true, pred)
                        if calibration is not None else None),
        "policy_curve": calibrated_policy_curve(calibration, true, pred, legal_age=legal_age),
    }
    result["run_id"] = _log_evaluation(registry, version, result, flip_tta)
    return result


def _log_evaluation(registry: ModelRegistry, version: ModelVersion, result: dict,
                    flip_tta: bool) -> str:
    """The evaluation as an MLflow run named "evaluate", linked to the version it scored."""
    from model.lifecycle.tracking import tracked_run

    params = {key: result[key] for key in ("model", "model_path", "faces_dir", "fingerprint",
                                           "split", "rows_usable", "rows_seen_in_training")}
    tags = {"model_version": version.version if version.run_id else None,
            "model_run_id": version.run_id}
    with tracked_run(registry.store, "evaluate", params={**params, "flip_tta": flip_tta},
                     tags=tags) as run:
        run.log_metrics({k: v for k, v in result.items() if k not in params})
    return run.run_id


CALIBRATION_FIT_SHARE = 0.7  # of a `calibrate` face set, by content hash; the rest checks the fit


def calibrate_model(
    model_ref: str,
    faces_dir: Path,
    *,
    registry_store: str | Path,
    cache_dir: Path,
    policy: Policy | None = None,
    batch_size: int = Settings.score_batch_size,
    flip_tta: bool = True,
    assume_unseen: bool = False,
    validation_limits: dict | None = None,
) -> dict:
    """Publish a copy of a version with a calibration table fitted on faces it never saw.

    For versions trained elsewhere (imported) or calibrated on too few faces: 70 % of the
    folder's usable faces (by content hash) fit the table (with `policy.calibration_method`),
    the other 30 % measure it. Versions
    are immutable, so the result is a NEW version (same model file, `calibrated_from` in its
    config), produced by an MLflow run named "calibrate", that goes through `promote` like any
    other. `policy` gives the legal age and the interval coverage (default: the settings').

    Raises:
        UserError: the folder is the version's own training set, any of its faces is in the
            version's `training_images.txt`, the version has no such list (unless
            `assume_unseen`), or too few faces to fit and check.
    """
    import tempfile

    from model.data.dataset import validate_dataset
    from model.data.split import hash_position
    from model.lifecycle.card import model_card, reliability_plot
    from model.lifecycle.publish import DEFAULT_POLICY, VersionFiles, publish_version
    from model.lifecycle.tracking import tracked_run
    from model.serving.artifact import artifact_files

    policy = policy or DEFAULT_POLICY
    registry = ModelRegistry(registry_store, cache_dir=Path(cache_dir) / "models")
    version = registry.resolve(model_ref)
    if version.run_id is None:
        raise UserError(f"{model_ref!r} is not a version of {registry.root}: register it first")
    report = validate_dataset(Path(faces_dir), cache_dir=cache_dir, **(validation_limits or {}))
    usable = report.usable
    if report.fingerprint == version.config.get("dataset_fingerprint"):
        raise UserError(f"{faces_dir} is {version.version}'s own training set (calibrated on its "
                        "validation split when trained): use labelled faces it never saw")
    seen_hashes = training_hashes(version)
    if not seen_hashes and not assume_unseen:
        raise UserError(f"{version.version} has no {TRAINING_IMAGES_FILE}, so overlap with "
                        f"{faces_dir} cannot be checked: pass --assume-unseen only if you know "
                        "none of these faces trained it")
    overlap = int(usable["sha256"].isin(seen_hashes).sum())
    if overlap:
        raise UserError(f"{overlap} of {len(usable)} usable faces in {faces_dir} trained "
                        f"{version.version} ({TRAINING_IMAGES_FILE}): calibration must come from "
                        "faces the model never saw; remove them")
    fit = (hash_position(usable["sha256"]) < CALIBRATION_FIT_SHARE).to_numpy()
    true, pred = usable["real_age"].to_numpy(dtype=float), _predict(version, usable, report,
                                                                     cache_dir, batch_size,
                                                                     flip_tta)
    source = {"faces_dir": str(faces_dir), "fingerprint": report.fingerprint,
              "calibrated_from": version.version}
    try:
        calibration = fit_calibration(true[fit], pred[fit], legal_age=policy.legal_age,
                                      coverage=policy.coverage, method=policy.calibration_method,
                                      source=source)
    except ValueError as exc:
        raise UserError(f"{faces_dir}: {exc} (70 % of the usable faces fit the table)") from None
    if (~fit).sum() < 20:
        raise UserError(f"{faces_dir}: only {(~fit).sum()} faces left to check the fit (need 20)")
    figures = evaluate_calibration(calibration, true[~fit], pred[~fit])
    figures["fitted_on"] = f"{calibration.n} faces of {faces_dir}"
    figures["measured_on"] = f"{int((~fit).sum())} other faces of {faces_dir}"
    metrics = {**version.metrics, "test": {**version.metrics.get("test", {}),
                                           "calibration": figures}}
    config = {**version.config, "calibrated_from": version.version,
              "calibration_faces": str(faces_dir)}
    dataset = {"faces_dir": config.get("faces_dir"), "rows": config.get("rows"),
               "fingerprint": config.get("dataset_fingerprint")}
    params = {"calibrated_from": version.version, "faces_dir": str(faces_dir),
              "fingerprint": report.fingerprint, "legal_age": policy.legal_age,
              "calibration_coverage": policy.coverage, "rows_fit": calibration.n,
              "rows_check": int((~fit).sum())}
    with tempfile.TemporaryDirectory(dir=cache_dir) as work, \
            tracked_run(registry.store, "calibrate", params=params,
                        tags={"calibrated_from_run_id": version.run_id}) as run:
        extra = {CALIBRATION_FILE: calibration.save(Path(work) / CALIBRATION_FILE)}
        if (version.path / TRAINING_IMAGES_FILE).is_file():
            extra[TRAINING_IMAGES_FILE] = version.path / TRAINING_IMAGES_FILE
        # Same model, so the source version's serving artifact (verified on it) stays valid.
        extra.update(artifact_files(version.path))
        plots = [p for p in (version.path / "plots").glob("*.png") if p.name != "reliability.png"]
        plots.append(reliability_plot(figures, Path(work)))
        files = VersionFiles(Path(work), version.model_path, metrics, config,
                             str(config.get("dataset_fingerprint")),
                             model_card(config, metrics, dataset), plots, extra)
        new = publish_version(files, registry=registry, run=run).version
    log.info("calibrated %s on %s: registered %s", version.version, faces_dir, new)
    return {"version": new, "calibrated_from": version.version, "faces_dir": str(faces_dir),
            "rows_fit": calibration.n, "rows_check": int((~fit).sum()), "calibration": figures}


def _predict(version: ModelVersion, rows: pd.DataFrame, report, cache_dir: Path,
             batch_size: int, flip_tta: bool) -> np.ndarray:
    """The version's estimates for `rows` of a validated face folder."""
    from model.data.image_cache import load_images
    from model.serving.net import load_age_model
    from model.serving.predict import predict_ages

    images = load_images(rows, version.image_size, cache_dir, report.fingerprint)
    return predict_ages(load_age_model(version.model_path), np.asarray(images),
                        batch_size=batch_size, flip_tta=flip_tta)
