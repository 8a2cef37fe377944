"""MLflow runs of the `checkout-age` experiment: what train, register, calibrate and evaluate log.

A run gets params (flat `key: value` strings), metrics (every number of a nested figures dict,
keys joined by dots, e.g. `test.by_band.13-17.mae`; per-epoch figures with their epoch as the
step) and artifacts. `tracked_run` ends the run FINISHED, or FAILED when its body raises.
"""

from __future__ import annotations

import contextlib
import math
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from model.config import PROJECT_ROOT
from model.lifecycle.store import MlflowStore

MAX_PARAM_CHARS = 6000  # MLflow keeps a param value up to 6000 characters
_KEY_SIGNS = {"<": "lt", ">": "gt", "+": "plus", "%": "pct"}


def metric_key(*parts: object) -> str:
    """A metric name MLflow accepts (letters, digits, `_-. /`): `<13` -> `lt13`, `65+` -> `65plus`."""
    text = ".".join(str(part) for part in parts)
    for sign, word in _KEY_SIGNS.items():
        text = text.replace(sign, word)
    return re.sub(r"[^\w\-. /]", "_", text)


def flat_metrics(figures: dict, prefix: str = "") -> dict[str, float]:
    """Every finite number in a nested dict, keyed by its path (booleans and lists skipped)."""
    out: dict[str, float] = {}
    for key, value in figures.items():
        name = metric_key(prefix, key) if prefix else metric_key(key)
        if isinstance(value, dict):
            out.update(flat_metrics(value, name))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            if math.isfinite(float(value)):
                out[name] = float(value)
    return out


def git_commit() -> str | None:
    """The checkout's commit (with `-dirty` when it has local changes), None outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty.stdout.strip() else "")


class TrackingRun:
    """One MLflow run, written through the store's client."""

    def __init__(self, store: MlflowStore, run_id: str) -> None:
        self.store, self.run_id = store, run_id

    def log_params(self, params: dict) -> None:
        """Log params (None values skipped; long values cut to what MLflow keeps)."""
        from mlflow.entities import Param

        items = [Param(metric_key(k), str(v)[:MAX_PARAM_CHARS]) for k, v in params.items()
                 if v is not None]
        for start in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
            self.store.client.log_batch(self.run_id, params=items[start:start + 100])

    def log_metrics(self, figures: dict, *, prefix: str = "", step: int = 0) -> None:
        """Log every number of `figures` (see `flat_metrics`) at `step`."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(key, value, now, step)
                 for key, value in flat_metrics(figures, prefix).items()]
        for start in range(0, len(items), 1000):
            self.store.client.log_batch(self.run_id, metrics=items[start:start + 1000])

    def log_history(self, history: list[dict]) -> None:
        """Per-epoch figures of a fit (`loss`, `mae`, `val_mae`, ...), the epoch as the step."""
        for number, entry in enumerate(history, start=1):
            figures = {k: v for k, v in entry.items() if k not in ("epoch", "phase")}
            self.log_metrics(figures, prefix="epoch", step=number)

    def set_tags(self, tags: dict) -> None:
        """Set run tags (None values skipped)."""
        for key, value in tags.items():
            if value is not None:
                self.store.client.set_tag(self.run_id, key, str(value))

    def log_artifacts(self, folder: Path, artifact_path: str | None = None) -> None:
        """Copy a folder's files into the run's artifacts."""
        self.store.client.log_artifacts(self.run_id, str(folder), artifact_path)


@contextlib.contextmanager
def tracked_run(store: MlflowStore, name: str, *, params: dict | None = None,
                tags: dict | None = None) -> Iterator[TrackingRun]:
    """Start a run in the `checkout-age` experiment; end it FINISHED, or FAILED on an error."""
    client = store.client
    run = TrackingRun(store, client.create_run(store.experiment_id, run_name=name).info.run_id)
    try:
        run.set_tags({"git_commit": git_commit(), **(tags or {})})
        run.log_params(params or {})
        yield run
    except BaseException:
        store.end_run(run.run_id, "FAILED")
        raise
    store.end_run(run.run_id)
