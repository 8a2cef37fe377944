"""Where MLflow keeps runs and versions: an embedded folder or a shared tracking server.

A store is named by one string (`Settings.registry_store`):
- a folder (default `var/mlflow`): the embedded store, nothing to start by hand. Runs and the
  registry live in `mlflow.db` (SQLite) there, artifacts under `artifacts/`;
- a tracking URI (`http://host:5000`, `postgresql://...`, `sqlite:///...`, `databricks`): a
  shared store, as `MLFLOW_TRACKING_URI` names it. Artifacts go where the server (or
  `artifact_root`, for a new experiment) says.

`import mlflow` takes seconds (it pulls in pandas, pydantic, SQLAlchemy), so it happens only
when a client is first needed: never at module import, never in a Spark worker.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import sys
import tempfile
from functools import cached_property
from pathlib import Path

from model.config import Settings, disable_mlflow_telemetry
from model.errors import UserError

EXPERIMENT = "checkout-age"  # every run that produces, calibrates or evaluates a version
_URI = re.compile(r"^[a-z][a-z0-9+.-]*:")  # a scheme: http:, sqlite:, postgresql+psycopg2:, ...

log = logging.getLogger(__name__)


def is_tracking_uri(store: str | Path) -> bool:
    """True for a tracking URI, False for a folder path (the embedded store)."""
    text = str(store)
    return bool(_URI.match(text)) and not re.match(r"^[A-Za-z]:[\\/]", text)


class MlflowStore:
    """One MLflow tracking + registry store and the experiment our runs go to."""

    def __init__(self, store: str | Path, *, artifact_root: str | None = None) -> None:
        if is_tracking_uri(store):
            self.root: Path | None = None
            self.tracking_uri = str(store)
            self.artifact_root = artifact_root
        else:
            self.root = Path(store).resolve()
            self.tracking_uri = f"sqlite:///{self.root / 'mlflow.db'}"
            self.artifact_root = artifact_root or (self.root / "artifacts").as_uri()

    def __repr__(self) -> str:
        return f"MlflowStore({self.label})"

    @property
    def label(self) -> str:
        """How messages name this store (the folder, or the tracking URI)."""
        return str(self.root) if self.root is not None else self.tracking_uri

    @cached_property
    def client(self):  # -> mlflow.MlflowClient (not annotated: mlflow is imported lazily)
        """The MLflow client (creates the embedded store on first use)."""
        disable_mlflow_telemetry()
        with _quiet_mlflow():
            from mlflow import MlflowClient

            if self.root is not None:
                _create_embedded(self.root / "mlflow.db")
            client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
            client.search_experiments(max_results=1)  # creates/migrates the SQLite schema now
        return client

    @cached_property
    def experiment_id(self) -> str:
        """The `checkout-age` experiment, created on first use (a concurrent creation wins)."""
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(EXPERIMENT)
        if found is not None:
            return found.experiment_id
        try:
            return self.client.create_experiment(EXPERIMENT, artifact_location=self.artifact_root)
        except MlflowException:  # created by another process meanwhile
            found = self.client.get_experiment_by_name(EXPERIMENT)
            if found is None:
                raise
            return found.experiment_id

    def artifact_dir(self, artifact_uri: str) -> Path | None:
        """The local folder behind an artifact URI, or None when it is remote."""
        if artifact_uri.startswith("file://"):
            from urllib.parse import unquote, urlparse

            return Path(unquote(urlparse(artifact_uri).path))
        if not is_tracking_uri(artifact_uri):
            return Path(artifact_uri)
        return None

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        """Mark a run ended (MLflow prints the run's URL on stdout then: sent to stderr, as
        stdout carries a command's result)."""
        with contextlib.redirect_stdout(sys.stderr):
            self.client.set_terminated(run_id, status)

    def check_reachable(self) -> None:
        """UserError naming the store when it cannot be reached (a server down, a bad URI)."""
        try:
            self.client  # noqa: B018 (building it talks to the store)
        except Exception as exc:  # any failure to connect: say which store, not a traceback
            raise UserError(f"cannot reach the MLflow store {self.label}: {exc}") from None


def _create_embedded(db: Path) -> None:
    """Give a new embedded store its schema by copying an empty one made once per MLflow
    version: building the schema runs MLflow's whole migration history (7-12 s on 2 busy
    cores), a copy takes milliseconds. A store that exists is left alone."""
    import mlflow

    if db.exists():
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    template = Settings.cache_dir / f"mlflow-{mlflow.__version__}-empty.db"
    if not template.is_file():
        with tempfile.TemporaryDirectory() as work:
            fresh = Path(work) / "mlflow.db"
            mlflow.MlflowClient(tracking_uri=f"sqlite:///{fresh}").search_experiments(max_results=1)
            template.parent.mkdir(parents=True, exist_ok=True)
            _place(fresh, template, replace=True)
    _place(template, db, replace=False)


def _place(source: Path, target: Path, *, replace: bool) -> None:
    """Copy `source` to `target` atomically; with `replace=False` never over an existing file
    (a store created meanwhile by another process wins)."""
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.copyfile(source, temp)
    try:
        if replace:
            os.replace(temp, target)
        else:
            with contextlib.suppress(FileExistsError):
                os.link(temp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()


@contextlib.contextmanager
def _quiet_mlflow():
    """MLflow logs its SQLite migrations at INFO on first use: keep them out of our output."""
    names = ("alembic", "mlflow.store.db.utils")
    levels = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
