"""A team's shared tracking server: train -> promote -> score a day -> rollback, over HTTP.

A real `mlflow server` on 127.0.0.1 (its own SQLite file and artifact folder); every command
reaches it through `MLFLOW_TRACKING_URI` alone, and nothing is written to the embedded store.
Headless Chromium then opens the server's UI: the model page shows the versions and the
`production` alias, the experiment page the runs that made them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from chromium_page import visit
from mlflow_server import running_server

from model.lifecycle.registry import REGISTERED_MODEL, ModelRegistry

pytestmark = pytest.mark.slow
DAY = "2026-03-20"


def _cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    command = [str(Path(sys.executable).parent / "checkout-age"), *args]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, (args, done.stderr[-3000:])
    return done


def test_train_promote_score_rollback_against_a_tracking_server(
    small_faces_dir: Path, faces_dir: Path, tmp_path: Path
) -> None:
    from jobs.simulator.landing import load_test_faces, write_day
    from jobs.simulator.simulate import simulate_day

    with running_server(f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "server-artifacts",
                        tmp_path / "server.log") as url:
        env = {**os.environ, "MLFLOW_TRACKING_URI": url,
               "MODEL_REGISTRY": str(tmp_path / "embedded"),  # must stay unused
               "CHECKOUT_AGE_CACHE_DIR": str(tmp_path / "cache"), "TF_CPP_MIN_LOG_LEVEL": "2"}
        first = _cli(env, "model", "train", "--faces", str(small_faces_dir), "--profile",
                     "quick", "--size", "96", "--head-epochs", "1", "--epochs", "0", "--limit",
                     "200", "--batch-size", "32", "--version-only").stdout.strip()
        assert first == "v0001"
        trained = ModelRegistry(url, cache_dir=tmp_path / "client-cache").resolve("v0001")
        second = _cli(env, "model", "register", str(trained.model_path), "--faces",
                      str(small_faces_dir), "--version-only").stdout.strip()
        assert second == "v0002"
        for version in (first, second):
            _cli(env, "model", "promote", version, "--max-mae", "100", "--tolerance", "100")

        root = tmp_path / "data"
        faces = load_test_faces(faces_dir, tmp_path / "face-cache")
        write_day(simulate_day(faces, DAY, 1, 20, 5), str(root))
        scored = json.loads(_cli(env, "score", "--date", DAY, "--root", str(root), "--master",
                                 "local[1]", "--json").stdout.strip().splitlines()[-1])
        registry = ModelRegistry(url, cache_dir=tmp_path / "client-cache")
        production = registry.resolve("production")
        assert (scored["model_version"], scored["model_run_id"]) == ("v0002", production.run_id)
        table = pd.read_parquet(root / "reports" / "photo_scores" / f"date={DAY}")
        assert len(table) == scored["photos_scored"] > 0
        assert set(table["model_version"]) == {"v0002"}
        assert set(table["model_run_id"]) == {production.run_id}

        _cli(env, "model", "rollback")
        shown = _cli(env, "model", "show", "production", "--version-only").stdout
        assert shown == "v0001\n"
        pin = _cli(env, "model", "show", "production", "--pin").stdout.strip()
        assert pin == f"v0001@{trained.run_id}"

        # The server's own records: the runs that produced the versions, the alias history.
        client = registry.client
        runs = {run.info.run_id: run for run in client.search_runs(
            [registry.store.experiment_id])}
        assert runs[trained.run_id].info.run_name == "train"
        assert runs[trained.run_id].info.status == "FINISHED"
        assert runs[production.run_id].info.run_name == "register"
        assert "test.mae" in runs[trained.run_id].data.metrics
        assert int(client.get_model_version_by_alias(REGISTERED_MODEL, "production").version) == 1
        assert [(e["event"], e["version"]) for e in registry.history()] == [
            ("promote", "v0001"), ("promote", "v0002"), ("rollback", "v0001")]

        # What a person sees in the MLflow UI.
        model_page = visit(f"{url}/#/models/{REGISTERED_MODEL}", settle_s=2,
                           wait_for_text="Version 2", timeout_s=90)
        (tmp_path / "mlflow-model.png").write_bytes(model_page.screenshot)
        text = model_page.dom["text"].replace("\xa0", " ")
        assert "Version 1" in text and "Version 2" in text and "@ production" in text, text[:2000]
        assert "production.00003" in text  # the alias history, as registered-model tags
        runs_page = visit(f"{url}/#/experiments/{registry.store.experiment_id}/runs",
                          settle_s=2, wait_for_text="matching runs",
                          wait_for_lines=("train", "register"), timeout_s=120)
        (tmp_path / "mlflow-runs.png").write_bytes(runs_page.screenshot)
        lines = runs_page.dom["text"].splitlines()
        assert "train" in lines and "register" in lines, lines
    # With the server gone, the pin still resolves: its files were downloaded once, under the
    # run id, and a pin never asks MLflow for them (the daily DAG's jobs get pins).
    pinned = json.loads(_cli(env, "model", "show", pin, "--json").stdout)
    assert (pinned["version"], pinned["run_id"]) == ("v0001", trained.run_id)
    assert Path(pinned["model_path"]).is_relative_to(tmp_path / "cache")
    assert not (tmp_path / "embedded").exists()
    assert (tmp_path / "server-artifacts").is_dir()
