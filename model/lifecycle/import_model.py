"""Importing an age model trained elsewhere (a GPU worker) into the registry.

A model trained on another machine reaches production by being imported here: `import_model` checks that the file is a Keras age model this system
can run (raw RGB pixels (None, S, S, 3) in, one age out), evaluates it on the face set's
content-hash test split HERE (never trusting figures computed elsewhere), and documents and
publishes it exactly like a model trained here (`model.lifecycle.publish`: card, plots,
calibration, training hashes), from an MLflow run named "register".
It is never promoted by the import: `model promote` applies the same gate to it.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

import keras
import numpy as np

from model.config import Settings
from model.data.split import SPLITS
from model.errors import UserError
from model.evaluation.evaluate import evaluate_splits
from model.lifecycle.publish import (
    DEFAULT_POLICY,
    Policy,
    PublishResult,
    document_version,
    publish_version,
)
from model.lifecycle.registry import ModelRegistry
from model.lifecycle.tracking import tracked_run
from model.serving.net import load_age_model

log = logging.getLogger(__name__)


def check_age_model_file(path: Path) -> keras.Model:
    """Load `path` if it is a compatible age model, else UserError saying what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"model file not found: {path}")
    if not zipfile.is_zipfile(path):
        raise UserError(f"{path} is not a Keras model file (a .keras file is a zip archive "
                        "written by model.save)")
    model = load_age_model(path)
    inputs, outputs = model.input_shape, model.output_shape
    if (not isinstance(inputs, tuple) or len(inputs) != 4 or inputs[3] != 3
            or inputs[1] is None or inputs[1] != inputs[2]):
        raise UserError(f"{path} is not a compatible age model: input shape {inputs}, expected "
                        "(None, S, S, 3) raw RGB pixels")
    if not isinstance(outputs, tuple) or tuple(outputs[1:]) != (1,):
        raise UserError(f"{path} is not a compatible age model: output shape {outputs}, "
                        "expected (None, 1) (the age in years)")
    return model


def _run_facts(run_json: Path | None) -> dict:
    """The training run's config and figures from its summary file (or nothing)."""
    if run_json is None:
        return {}
    try:
        run = json.loads(Path(run_json).read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read the run summary {run_json}: {exc}") from None
    facts = dict(run.get("config") or {})
    for key in ("epochs_run", "best_epoch", "history", "device", "dtype_policy", "backend"):
        if key in run:
            facts[key] = run[key]
    if "fit_seconds" in run:
        facts["train_seconds"] = run["fit_seconds"]
    return facts


def import_model(model_file: Path, faces_dir: Path, *, registry_store: str | Path,
                 cache_dir: Path, run_json: Path | None = None,
                 validation_limits: dict | None = None, policy: Policy = DEFAULT_POLICY,
                 batch_size: int = Settings.score_batch_size) -> PublishResult:
    """Check, evaluate and publish a model file trained elsewhere (module docstring).

    Raises:
        UserError: not a Keras file, not an age model (input/output shape), or a face set
            that cannot be evaluated.
    """
    from model.data.dataset import validate_dataset
    from model.data.image_cache import load_images
    from model.data.split import assign_splits

    model = check_age_model_file(model_file)
    size = int(model.input_shape[1])
    report = validate_dataset(Path(faces_dir), cache_dir=cache_dir, **(validation_limits or {}))
    rows = assign_splits(report.usable)
    counts = {name: int((rows["split"] == name).sum()) for name in SPLITS}
    if counts["valid"] == 0 or counts["test"] == 0:
        raise UserError(f"{faces_dir}: no valid/test faces to evaluate the imported model on")
    images = np.asarray(load_images(rows, size, cache_dir, report.fingerprint))
    metrics, predictions = evaluate_splits(model, images, rows, batch_size,
                                           legal_age=policy.legal_age,
                                           challenge_age=policy.challenge_age)
    recorded = {
        **_run_facts(run_json),
        "size": size,
        "rows": counts,
        "faces_dir": str(faces_dir),
        "imported_from": str(Path(model_file).resolve()),
        "imported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": f"checkout-age model register {model_file}",
    }
    recorded.setdefault("profile", "imported")
    registry = ModelRegistry(registry_store, cache_dir=Path(cache_dir) / "models")
    params = {key: recorded.get(key) for key in ("profile", "size", "backbone", "imported_from",
                                                 "faces_dir", "epochs_run", "device")}
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    work_dir = Path(tempfile.mkdtemp(prefix="import-", dir=cache_dir))
    try:
        valid = (rows["split"] == "valid").to_numpy()
        with tracked_run(registry.store, "register",
                         params={**params, "dataset_fingerprint": report.fingerprint}) as run:
            files = document_version(model, rows, metrics, predictions, recorded,
                                     report.fingerprint, policy, work_dir,
                                     valid_images=images[valid])
            result = publish_version(files, registry=registry, run=run)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    log.info("imported %s as %s: test MAE %.2f", model_file, result.version,
             metrics["test"]["mae"])
    return result
