"""File-based model registry: immutable numbered versions and a movable `production` alias.

Layout under the root (`MODEL_REGISTRY`, default `var/registry`)::

    versions/v0001/  model.keras  metrics.json  config.json  card.md  plots/*.png  [extra files]
    aliases/production     {"version": "v0002", "previous": ["v0001"]}  (the truth)
    aliases/history.jsonl  one line per alias move (audit trail, appended after the move)

A version directory is assembled in a staging directory and renamed into place, so it is
complete or absent. The alias file holds the current version and the stack of earlier ones
(for rollback) in ONE file that is replaced atomically (temp file, fsync, `os.replace`): a
crash at any point of a promotion leaves either the old or the new alias, never a mix.

Promotion gate: the candidate's test MAE must be at most `max_mae` (`Settings.gate_max_mae`,
the original study's requirement) and at most the current production's test MAE plus
`tolerance` (absolute years, `Settings.gate_tolerance`). Both MAEs come from each version's
own test split.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import time
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from model.config import Settings
from model.errors import UserError

PRODUCTION = "production"
_VERSION_RE = re.compile(r"^v(\d{4,})$")


@dataclass(frozen=True)
class ModelVersion:
    """One resolved model: a registry version or a loose `.keras` file."""

    version: str
    model_path: Path
    metrics: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    path: Path | None = None  # the version directory; None for a loose file

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


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write_json(path: Path, payload: dict) -> None:
    """Replace `path` with `payload` so that readers see the old or the new file, never half."""
    temp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        with open(temp, "w") as handle:
            json.dump(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
    _fsync_dir(path.parent)


class ModelRegistry:
    """Versions, the production alias and the promotion gate, under one directory."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.versions_dir = self.root / "versions"
        self.aliases_dir = self.root / "aliases"
        self.alias_path = self.aliases_dir / PRODUCTION
        self.history_path = self.aliases_dir / "history.jsonl"

    # ----------------------------------------------------------------- internals
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise writers (registrations, promotions) across processes."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _version_ids(self) -> list[str]:
        if not self.versions_dir.is_dir():
            return []
        ids = [p.name for p in self.versions_dir.iterdir() if _VERSION_RE.match(p.name)]
        return sorted(ids, key=lambda v: int(v[1:]))

    def _load_version(self, version: str) -> ModelVersion:
        path = self.versions_dir / version
        return ModelVersion(
            version=version,
            model_path=path / "model.keras",
            metrics=_read_json(path / "metrics.json"),
            config=_read_json(path / "config.json"),
            path=path,
        )

    def _alias(self) -> dict:
        return _read_json(self.alias_path)

    def _move_alias(self, version: str, previous: list[str], event: str) -> None:
        self.aliases_dir.mkdir(parents=True, exist_ok=True)
        _atomic_write_json(self.alias_path, {"version": version, "previous": previous})
        line = {"event": event, "version": version, "previous": previous[-1:] or None,
                "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        with open(self.history_path, "a") as handle:
            handle.write(json.dumps(line) + "\n")

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
    ) -> str:
        """Store a trained model as the next version; returns its id (`v0001`, `v0002`, ...).

        Args:
            model_path: the `.keras` file (copied).
            metrics: evaluation figures, e.g. {"test": age_metrics(...), "valid": ...}.
            config: training configuration (size, backbone, epochs, seed, ...).
            fingerprint: the training dataset's fingerprint (stored in config.json).
            card_md: the model card.
            plots: PNG files copied into `plots/`.
            extra_files: more files to keep, {name in the version dir: source path}.
        """
        model_path = Path(model_path)
        if not model_path.is_file():
            raise UserError(f"model file not found: {model_path}")
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        staging = self.versions_dir / f".staging-{uuid.uuid4().hex}"
        staging.mkdir()
        try:
            shutil.copy2(model_path, staging / "model.keras")
            stored_config = {
                **config,
                "dataset_fingerprint": fingerprint,
                "registered_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            (staging / "metrics.json").write_text(json.dumps(metrics, indent=2))
            (staging / "config.json").write_text(json.dumps(stored_config, indent=2))
            (staging / "card.md").write_text(card_md)
            (staging / "plots").mkdir()
            for plot in plots:
                shutil.copy2(plot, staging / "plots" / Path(plot).name)
            for name, source in (extra_files or {}).items():
                shutil.copy2(source, staging / name)
            for path in staging.rglob("*"):
                if path.is_file():
                    path.chmod(0o444)  # versions are immutable
            with self._locked():
                ids = self._version_ids()
                number = int(ids[-1][1:]) + 1 if ids else 1
                version = f"v{number:04d}"
                os.rename(staging, self.versions_dir / version)
            _fsync_dir(self.versions_dir)
            return version
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def list_versions(self) -> list[dict]:
        """One summary dict per version, oldest first, with `production` marked."""
        current = self._alias().get("version")
        rows = []
        for version in self._version_ids():
            entry = self._load_version(version)
            config = entry.config
            rows.append({
                "version": version,
                "production": version == current,
                "test_mae": entry.test_mae,
                "backbone": config.get("backbone"),
                "size": config.get("size"),
                "head": config.get("head"),
                "epochs_run": config.get("epochs_run"),
                "dataset_fingerprint": config.get("dataset_fingerprint"),
                "registered_at": config.get("registered_at"),
            })
        return rows

    def production(self) -> ModelVersion | None:
        """The version the `production` alias points at, or None before any promotion."""
        version = self._alias().get("version")
        return self._load_version(version) if version else None

    def resolve(self, ref: str | Path) -> ModelVersion:
        """Find a model by "production", a version id, or a path to a `.keras` file/version dir.

        Raises:
            UserError: the reference matches nothing.
        """
        text = str(ref)
        if text == PRODUCTION:
            current = self.production()
            if current is None:
                raise UserError(f"no production model in {self.root}: promote a version first")
            return current
        if _VERSION_RE.match(text):
            if (self.versions_dir / text).is_dir():
                return self._load_version(text)
            known = ", ".join(self._version_ids()) or "none"
            raise UserError(f"unknown model version {text!r} in {self.root} (versions: {known})")
        path = Path(text)
        if path.is_dir() and (path / "model.keras").is_file():
            path = path / "model.keras"
        if path.is_file() and path.suffix == ".keras":
            folder = path.parent
            return ModelVersion(
                version=folder.name if (folder / "config.json").is_file() else path.stem,
                model_path=path,
                metrics=_read_json(folder / "metrics.json"),
                config=_read_json(folder / "config.json"),
                path=folder if (folder / "config.json").is_file() else None,
            )
        raise UserError(
            f"unknown model {text!r}: not 'production', a version id (v0001) or a .keras file"
        )

    def promote(
        self, version: str, *, max_mae: float = Settings.gate_max_mae,
        tolerance: float = Settings.gate_tolerance,
    ) -> PromotionResult:
        """Point `production` at `version` if it passes the gate (see the module docstring)."""
        with self._locked():
            candidate = self.resolve(version)
            if candidate.path is None or candidate.path.parent != self.versions_dir:
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
            stack = list(self._alias().get("previous", [])) + ([previous] if previous else [])
            self._move_alias(candidate.version, stack, "promote")
            against = f", production {previous} had {current_mae:.2f}" if current_mae is not None else ""
            return PromotionResult(
                True,
                f"{candidate.version}: test MAE {mae:.2f} <= {max_mae:.2f}{against}",
                previous,
            )

    def rollback(self) -> ModelVersion:
        """Point `production` back at the version it replaced; returns the new production.

        Raises:
            UserError: no production yet, or nothing earlier to go back to.
        """
        with self._locked():
            alias = self._alias()
            if not alias.get("version"):
                raise UserError(f"no production model in {self.root}: nothing to roll back")
            stack = list(alias.get("previous", []))
            if not stack:
                raise UserError(f"production {alias['version']} has no earlier version to roll back to")
            target = stack.pop()
            self._move_alias(target, stack, "rollback")
            return self._load_version(target)
