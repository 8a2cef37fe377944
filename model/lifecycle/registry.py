"""The model registry on MLflow: registered model `checkout-age`, its versions, the `production` alias.

A version is MLflow's: numbered 1, 2, ... by the registry (shown as `v0001`, `v0002`, ... here and
in every report table), linked to the run that produced it, its files the run's artifacts under
`version/`::

    model.keras  metrics.json  config.json  card.md  plots/*.png  [calibration.json,
    training_images.txt, and what the publish step's extra producers add]

The files are logged before the version is created, and creating it is one database insert, so
a version is complete or absent; nothing rewrites a version's files afterwards.

`production` is an MLflow alias (`models:/checkout-age@production`). A promotion first writes
the candidate's rollback stack (the productions before it, oldest first) as the version tag
`rollback_stack`, then moves the alias (one update): a process killed at any point leaves the old
alias or the new one, each with a consistent stack. Promotions and rollbacks are serialised
(a file lock beside an embedded store; a lock entry in a shared store), and every alias move is
recorded as a registered-model tag `production.NNNNN` (the history, appended after the move).

Promotion gate: the candidate's test MAE must be at most `max_mae` (`Settings.gate_max_mae`)
and at most the current production's test MAE plus `tolerance` (absolute years,
`Settings.gate_tolerance`). Both MAEs come from each version's own test split.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import socket
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from model.config import Settings
from model.errors import UserError
from model.lifecycle.store import MlflowStore

PRODUCTION = "production"
REGISTERED_MODEL = "checkout-age"
VERSION_ARTIFACTS = "version"  # the producing run's artifact folder holding a version's files
MODEL_FILE = "model.keras"
TRAINING_IMAGES_FILE = "training_images.txt"  # content hashes of the faces a version learnt from
_VERSION_RE = re.compile(r"^v(\d{4,})$")
# A version pinned to the run that produced it (`ModelRegistry.pin`): "v0003@<run id>".
_PINNED_RE = re.compile(r"^v(?P<number>\d{4,})@(?P<run_id>[0-9a-f]{32})$")
_MODELS_URI = re.compile(rf"^models:/{REGISTERED_MODEL}(?:@(?P<alias>\w+)|/(?P<number>\d+))$")
_LIST_TAGS = ("backbone", "size", "head", "epochs_run", "dataset_fingerprint", "registered_at",
              "profile")
LOCK_STALE_S = 120.0  # a shared-store lock older than this was left by a dead process
LOCK_WAIT_S = 60.0


def version_id(number: int | str) -> str:
    """MLflow's version number as this system names it: 3 -> "v0003"."""
    return f"v{int(number):04d}"


@dataclass(frozen=True)
class ModelVersion:
    """One resolved model: a registry version or a loose `.keras` file."""

    version: str
    model_path: Path
    metrics: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    path: Path | None = None  # the version's folder (local); None for a loose file
    run_id: str | None = None  # the MLflow run that produced it; None for a loose file

    @property
    def image_size(self) -> int:
        """Input side in pixels (from the training config, else from the model file)."""
        if "size" in self.config:
            return int(self.config["size"])
        return _input_size_of_keras_file(self.model_path)

    @property
    def test_mae(self) -> float | None:
        """Test-split MAE recorded at registration (None when unknown)."""
        return _test_mae(self.metrics)


@dataclass(frozen=True)
class PromotionResult:
    """Outcome of `ModelRegistry.promote`; `reason` names the figures compared."""

    promoted: bool
    reason: str
    previous: str | None


def _test_mae(metrics: dict) -> float | None:
    section = metrics.get("test", metrics)
    value = section.get("mae") if isinstance(section, dict) else None
    return float(value) if value is not None else None


def _input_size_of_keras_file(path: Path) -> int:
    """Read the input side from a `.keras` archive's config without loading Keras."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
        for layer in config["config"]["layers"]:
            if layer["class_name"] == "InputLayer":
                return int(layer["config"]["batch_shape"][1])
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise UserError(f"cannot read the input size of {path}: {exc}") from None
    raise UserError(f"{path} has no input layer")


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _missing(exc: Exception) -> bool:
    """True when an MLflow error means "no such model, version or alias"."""
    return getattr(exc, "error_code", None) in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


class ModelRegistry:
    """Versions, the production alias and the promotion gate, in one MLflow store.

    Args:
        store: a folder (the embedded store) or a tracking URI (`model.lifecycle.store`).
        cache_dir: where versions of a remote store are downloaded (once each; they never
            change). Default: `Settings.cache_dir / "models"`.
        artifact_root: artifact location of the experiment if this creates it.
    """

    def __init__(self, store: str | Path, *, cache_dir: Path | None = None,
                 artifact_root: str | None = None) -> None:
        self.store = MlflowStore(store, artifact_root=artifact_root)
        self.root = self.store.label
        self.cache_dir = Path(cache_dir) if cache_dir else Settings.cache_dir / "models"

    @property
    def client(self):  # -> mlflow.MlflowClient
        """The store's MLflow client."""
        return self.store.client

    # ----------------------------------------------------------------- internals
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise promotions and rollbacks across processes (and machines, on a server)."""
        if self.store.root is not None:
            self.store.root.mkdir(parents=True, exist_ok=True)
            with open(self.store.root / ".promotion.lock", "a") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
            return
        with self._shared_lock():
            yield

    @contextlib.contextmanager
    def _shared_lock(self) -> Iterator[None]:
        """A lock a shared store holds for every client: a registered model that exists while
        a promotion runs (its creation fails while another holds it)."""
        from mlflow.exceptions import MlflowException

        name = f"{REGISTERED_MODEL}.promotion-lock"
        holder = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "at": time.time()})
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                self.client.create_registered_model(name, description=holder)
                break
            except MlflowException as exc:
                if getattr(exc, "error_code", None) != "RESOURCE_ALREADY_EXISTS":
                    raise
            with contextlib.suppress(MlflowException, ValueError):
                held = json.loads(self.client.get_registered_model(name).description or "{}")
                if time.time() - float(held.get("at", 0)) > LOCK_STALE_S:
                    self.client.delete_registered_model(name)  # left by a dead process
                    continue
            if time.monotonic() > deadline:
                raise UserError(f"another promotion holds {name} in {self.root}; retry later")
            time.sleep(0.5)
        try:
            yield
        finally:
            with contextlib.suppress(MlflowException):
                self.client.delete_registered_model(name)

    def _ensure_registered_model(self) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(REGISTERED_MODEL)
        except MlflowException as exc:
            if not _missing(exc):
                raise
            with contextlib.suppress(MlflowException):  # created concurrently: fine
                self.client.create_registered_model(
                    REGISTERED_MODEL, description="Customer age from a checkout-camera face "
                    "(years). Versions are produced by `checkout-age model train | register | "
                    "calibrate`; the alias `production` is what the daily score job uses.")

    def _mlflow_versions(self) -> list:
        from mlflow.exceptions import MlflowException

        try:
            found = self.client.search_model_versions(f"name='{REGISTERED_MODEL}'")
        except MlflowException as exc:
            if _missing(exc):
                return []
            raise
        return sorted(found, key=lambda v: int(v.version))

    def _alias_number(self) -> int | None:
        from mlflow.exceptions import MlflowException

        try:
            return int(self.client.get_model_version_by_alias(REGISTERED_MODEL, PRODUCTION).version)
        except MlflowException as exc:
            if _missing(exc):
                return None
            raise

    def _version_folder(self, mv) -> Path:
        """The local folder of a version's files (downloaded once from a remote store)."""
        local = self.store.artifact_dir(mv.source)
        if local is not None:
            return local
        target = self.cache_dir / f"{version_id(mv.version)}-{mv.run_id}"
        if (target / MODEL_FILE).is_file():
            return target
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".download-", dir=self.cache_dir))
        try:
            self.client.download_artifacts(mv.run_id, VERSION_ARTIFACTS, str(staging))
            with contextlib.suppress(OSError):  # another process finished the same download
                os.rename(staging / VERSION_ARTIFACTS, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target

    def _load(self, mv) -> ModelVersion:
        folder = self._version_folder(mv)
        return ModelVersion(version=version_id(mv.version), model_path=folder / MODEL_FILE,
                            metrics=_read_json(folder / "metrics.json"),
                            config=_read_json(folder / "config.json"), path=folder,
                            run_id=mv.run_id)

    def _local_folder_of_run(self, number: int, run_id: str) -> Path | None:
        """A run's version files already on this machine, found without MLflow: the embedded
        store's artifacts or this registry's download cache. None when neither holds them."""
        candidates = [self.cache_dir / f"{version_id(number)}-{run_id}"]
        if self.store.root is not None:  # the experiment's artifacts/<run id>/artifacts/version
            artifacts = self.store.root / "artifacts"
            candidates += [artifacts / run_id / "artifacts" / VERSION_ARTIFACTS,
                           *sorted(artifacts.glob(f"*/{run_id}/artifacts/{VERSION_ARTIFACTS}"))]
        return next((folder for folder in candidates if (folder / MODEL_FILE).is_file()
                     and (folder / "config.json").is_file()), None)

    def _resolve_pinned(self, number: int, run_id: str) -> ModelVersion:
        # A run id is unique to one run, so files found under it are that version's files
        # whatever happened to the registry since; only when they are not here does MLflow say.
        folder = self._local_folder_of_run(number, run_id)
        if folder is not None:
            return ModelVersion(version=version_id(number), model_path=folder / MODEL_FILE,
                                metrics=_read_json(folder / "metrics.json"),
                                config=_read_json(folder / "config.json"), path=folder,
                                run_id=run_id)
        mv = self._get(number)
        if mv.run_id != run_id:
            raise UserError(f"{version_id(number)} in {self.root} is now run {mv.run_id}, not the "
                            f"pinned run {run_id}: the registry changed since the version was "
                            f"pinned; resolve it again")
        return self._load(mv)

    def _get(self, number: int):
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version(REGISTERED_MODEL, str(number))
        except MlflowException as exc:
            if not _missing(exc):
                raise
        known = ", ".join(version_id(v.version) for v in self._mlflow_versions()) or "none"
        raise UserError(f"unknown model version {version_id(number)!r} in {self.root} "
                        f"(versions: {known})")

    def _move_alias(self, number: int, stack: list[str], event: str, previous: str | None) -> None:
        """Write the target's rollback stack, move the alias, then record the move."""
        self.client.set_model_version_tag(REGISTERED_MODEL, str(number), "rollback_stack",
                                          json.dumps(stack))
        self.client.set_registered_model_alias(REGISTERED_MODEL, PRODUCTION, str(number))
        seq = len(self.history()) + 1
        self.client.set_registered_model_tag(REGISTERED_MODEL, f"{PRODUCTION}.{seq:05d}", json.dumps(
            {"event": event, "version": version_id(number), "previous": previous, "at": _now()}))

    # ----------------------------------------------------------------- public API
    def register(
        self,
        model_path: Path,
        metrics: dict,
        config: dict,
        fingerprint: str,
        card_md: str,
        plots: list[Path],
        extra_files: dict[str, Path] | None = None,
        run_id: str | None = None,
    ) -> str:
        """Store a model as the next version; returns its id (`v0001`, `v0002`, ...).

        Args:
            model_path: the `.keras` file (copied).
            metrics: evaluation figures, e.g. {"test": age_metrics(...), "valid": ...}.
            config: training configuration (size, backbone, epochs, seed, ...).
            fingerprint: the training dataset's fingerprint (stored in config.json).
            card_md: the model card.
            plots: PNG files copied into `plots/`.
            extra_files: more files to keep, {name in the version folder: source path}.
            run_id: the MLflow run that produced the model (its artifacts get the files);
                None: a run named "register" is made for it.
        """
        model_path = Path(model_path)
        if not model_path.is_file():
            raise UserError(f"model file not found: {model_path}")
        stored_config = {**config, "dataset_fingerprint": fingerprint, "registered_at": _now()}
        with tempfile.TemporaryDirectory(prefix="version-") as work:
            staging = Path(work) / VERSION_ARTIFACTS
            (staging / "plots").mkdir(parents=True)
            shutil.copy2(model_path, staging / MODEL_FILE)
            (staging / "metrics.json").write_text(json.dumps(metrics, indent=2))
            (staging / "config.json").write_text(json.dumps(stored_config, indent=2))
            (staging / "card.md").write_text(card_md)
            for plot in plots:
                shutil.copy2(plot, staging / "plots" / Path(plot).name)
            for name, source in (extra_files or {}).items():
                (staging / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, staging / name)
            for path in staging.rglob("*"):
                if path.is_file():
                    path.chmod(0o444)  # versions are immutable
            own_run = run_id is None
            if own_run:
                run_id = self.client.create_run(self.store.experiment_id,
                                                run_name="register").info.run_id
            try:
                self.client.log_artifacts(run_id, str(staging), VERSION_ARTIFACTS)
                self._ensure_registered_model()
                run = self.client.get_run(run_id)
                tags = {key: stored_config.get(key) for key in _LIST_TAGS}
                tags["test_mae"] = _test_mae(metrics)
                created = self.client.create_model_version(
                    REGISTERED_MODEL, f"{run.info.artifact_uri}/{VERSION_ARTIFACTS}", run_id,
                    tags={k: str(v) for k, v in tags.items() if v is not None})
            except BaseException:
                if own_run:
                    self.store.end_run(run_id, "FAILED")
                raise
            if own_run:
                self.store.end_run(run_id)
        return version_id(created.version)

    def list_versions(self) -> list[dict]:
        """One summary dict per version, oldest first, with `production` marked."""
        current = self._alias_number()
        rows = []
        for mv in self._mlflow_versions():
            tags = mv.tags or {}
            mae = tags.get("test_mae")
            rows.append({
                "version": version_id(mv.version),
                "production": int(mv.version) == current,
                "test_mae": float(mae) if mae is not None else None,
                **{key: tags.get(key) for key in _LIST_TAGS},
                "size": int(tags["size"]) if tags.get("size") else None,
                "epochs_run": int(tags["epochs_run"]) if tags.get("epochs_run") else None,
                "run_id": mv.run_id,
            })
        return rows

    def production(self) -> ModelVersion | None:
        """The version the `production` alias points at, or None before any promotion."""
        number = self._alias_number()
        return self._load(self._get(number)) if number is not None else None

    def pin(self, ref: str | Path) -> str:
        """The registry version `ref` resolves to, pinned to its run: "v0003@<run id>".

        `resolve` of a pin reads the version's local files without importing MLflow (seconds of
        a core saved in every job that gets one), and refuses it if the registry's version is
        no longer that run's (a registry recreated or a version replaced since the pin).
        """
        version = self.resolve(ref)
        if version.run_id is None:
            raise UserError(f"{ref!r} is a loose model file, not a registry version: nothing to pin")
        return f"{version.version}@{version.run_id}"

    def resolve(self, ref: str | Path) -> ModelVersion:
        """Find a model by "production", a version id (v0003), a pin (v0003@<run id>), a
        `models:/checkout-age@alias` or `models:/checkout-age/3` URI, or a path to a `.keras`
        file or version folder.

        Raises:
            UserError: the reference matches nothing, or a pin no longer matches its version.
        """
        text = str(ref)
        pinned = _PINNED_RE.match(text)
        if pinned:
            return self._resolve_pinned(int(pinned["number"]), pinned["run_id"])
        uri = _MODELS_URI.match(text)
        if text == PRODUCTION or (uri and uri["alias"] == PRODUCTION):
            current = self.production()
            if current is None:
                raise UserError(f"no production model in {self.root}: promote a version first")
            return current
        if uri and uri["number"]:
            return self._load(self._get(int(uri["number"])))
        if _VERSION_RE.match(text):
            return self._load(self._get(int(text[1:])))
        path = Path(text)
        if path.is_dir() and (path / MODEL_FILE).is_file():
            path = path / MODEL_FILE
        if path.is_file() and path.suffix == ".keras":
            folder = path.parent
            documented = (folder / "config.json").is_file()
            return ModelVersion(
                version=folder.name if documented else path.stem, model_path=path,
                metrics=_read_json(folder / "metrics.json"),
                config=_read_json(folder / "config.json"), path=folder if documented else None)
        raise UserError(f"unknown model {text!r}: not 'production', a version id (v0001), "
                        f"models:/{REGISTERED_MODEL}@ALIAS or a .keras file")

    def promote(
        self, version: str, *, max_mae: float = Settings.gate_max_mae,
        tolerance: float = Settings.gate_tolerance,
    ) -> PromotionResult:
        """Point `production` at `version` if it passes the gate (see the module docstring)."""
        with self._locked():
            candidate = self.resolve(version)
            if candidate.run_id is None:
                raise UserError(f"{version!r} is not a version of this registry")
            current = self.production()
            previous = current.version if current else None
            mae = candidate.test_mae
            if mae is None:
                return PromotionResult(False, f"{candidate.version} has no test MAE", previous)
            if current is not None and current.version == candidate.version:
                return PromotionResult(False, f"{candidate.version} is already production", previous)
            if mae > max_mae:
                return PromotionResult(
                    False,
                    f"{candidate.version}: test MAE {mae:.2f} is above the maximum {max_mae:.2f}",
                    previous,
                )
            current_mae = current.test_mae if current else None
            if current_mae is not None and mae > current_mae + tolerance:
                return PromotionResult(
                    False,
                    f"{candidate.version}: test MAE {mae:.2f} is worse than production "
                    f"{previous}'s {current_mae:.2f} by {mae - current_mae:.2f} years "
                    f"(tolerance {tolerance:.2f})",
                    previous,
                )
            stack = (self._stack(current) + [previous]) if current else []
            self._move_alias(int(candidate.version[1:]), stack, "promote", previous)
            against = f", production {previous} had {current_mae:.2f}" if current_mae is not None else ""
            return PromotionResult(
                True,
                f"{candidate.version}: test MAE {mae:.2f} <= {max_mae:.2f}{against}",
                previous,
            )

    def _stack(self, version: ModelVersion) -> list[str]:
        tags = self.client.get_model_version(REGISTERED_MODEL, str(int(version.version[1:]))).tags
        return list(json.loads((tags or {}).get("rollback_stack", "[]")))

    def rollback(self) -> ModelVersion:
        """Point `production` back at the version it replaced; returns the new production.

        Raises:
            UserError: no production yet, or nothing earlier to go back to.
        """
        with self._locked():
            current = self.production()
            if current is None:
                raise UserError(f"no production model in {self.root}: nothing to roll back")
            stack = self._stack(current)
            if not stack:
                raise UserError(f"production {current.version} has no earlier version to roll back to")
            target = stack.pop()
            self._move_alias(int(target[1:]), stack, "rollback", current.version)
            return self.resolve(target)

    def version_tags(self) -> dict[str, dict]:
        """Every version's MLflow tags, {"v0001": {...}, ...}."""
        return {version_id(mv.version): dict(mv.tags or {}) for mv in self._mlflow_versions()}

    def tag_version(self, version: str, key: str, value: str) -> None:
        """Set one MLflow tag on a version (its files never change)."""
        self.client.set_model_version_tag(REGISTERED_MODEL, str(int(version[1:])), key, value)

    def set_production(self, version: str, stack: list[str], event: str) -> None:
        """Point production at `version` without the gate, with `stack` as its rollback
        history (for imports of an existing production, e.g. `model migrate-registry`)."""
        with self._locked():
            self._get(int(version[1:]))
            current = self._alias_number()
            self._move_alias(int(version[1:]), stack, event,
                             version_id(current) if current is not None else None)

    def history(self) -> list[dict]:
        """Every move of the production alias, oldest first (`event`, `version`, `previous`, `at`)."""
        from mlflow.exceptions import MlflowException

        try:
            tags = self.client.get_registered_model(REGISTERED_MODEL).tags or {}
        except MlflowException as exc:
            if _missing(exc):
                return []
            raise
        return [json.loads(value) for key, value in sorted(tags.items())
                if key.startswith(f"{PRODUCTION}.")]


__all__ = ["MODEL_FILE", "PRODUCTION", "REGISTERED_MODEL", "TRAINING_IMAGES_FILE", "ModelRegistry", "ModelVersion", "PromotionResult",
           "version_id"]
