"""The MLflow registry: versions, the promotion gate, rollback, a crash-safe production alias,
promotions serialised across processes (embedded SQLite store, real MLflow)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import keras
import pytest

from model.errors import UserError
from model.lifecycle.registry import REGISTERED_MODEL, ModelRegistry

PROJECT_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (tiny) Keras model file with a 12 px input."""
    inputs = keras.Input((12, 12, 3))
    outputs = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling2D()(inputs))
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    keras.Model(inputs, outputs).save(path)
    return path


@pytest.fixture()
def plot(tmp_path: Path) -> Path:
    path = tmp_path / "residuals.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\nfake")
    return path


def _register(registry: ModelRegistry, model_file: Path, plot: Path, mae: float | None) -> str:
    metrics = {"test": {"n": 10, "mae": mae}} if mae is not None else {}
    return registry.register(model_file, metrics, {"size": 12, "backbone": "tiny", "seed": 1},
                             "f" * 64, "# card\n", [plot])


def test_register_stores_an_immutable_complete_version(
    tmp_path: Path, model_file: Path, plot: Path
) -> None:
    registry = ModelRegistry(tmp_path / "reg")
    assert _register(registry, model_file, plot, 5.0) == "v0001"
    assert _register(registry, model_file, plot, 6.0) == "v0002"
    version = registry.resolve("v0001")
    folder = version.path
    assert folder.is_relative_to(tmp_path / "reg" / "artifacts")  # the embedded store's files
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) == [
        "card.md", "config.json", "metrics.json", "model.keras", "plots", "plots/residuals.png"]
    config = json.loads((folder / "config.json").read_text())
    assert config["dataset_fingerprint"] == "f" * 64 and config["seed"] == 1
    assert not (folder / "model.keras").stat().st_mode & 0o222  # read-only
    # MLflow's own view: version 1 of the registered model, produced by its own run.
    mv = registry.client.get_model_version(REGISTERED_MODEL, "1")
    assert mv.run_id == version.run_id and mv.tags["test_mae"] == "5.0"
    assert registry.client.get_run(mv.run_id).info.status == "FINISHED"
    assert (tmp_path / "reg" / "mlflow.db").is_file()


def test_list_and_resolve(tmp_path: Path, model_file: Path, plot: Path) -> None:
    registry = ModelRegistry(tmp_path)
    assert registry.list_versions() == [] and registry.production() is None
    with pytest.raises(UserError, match="no production model"):
        registry.resolve("production")
    _register(registry, model_file, plot, 5.0)
    registry.promote("v0001")
    rows = registry.list_versions()
    assert [(r["version"], r["production"], r["test_mae"], r["size"]) for r in rows] == [
        ("v0001", True, 5.0, 12)]
    version = registry.resolve("v0001")
    assert version.model_path == version.path / "model.keras" and version.model_path.is_file()
    assert version.image_size == 12 and version.test_mae == 5.0
    assert registry.resolve("production").version == "v0001"
    assert registry.resolve(f"models:/{REGISTERED_MODEL}@production").version == "v0001"
    assert registry.resolve(f"models:/{REGISTERED_MODEL}/1").run_id == version.run_id
    loose = registry.resolve(str(model_file))  # a .keras file outside any registry
    assert loose.version == "tiny" and loose.image_size == 12 and loose.metrics == {}
    assert loose.run_id is None
    assert registry.resolve(str(version.path)).image_size == 12
    with pytest.raises(UserError, match=r"unknown model version 'v0009'.*versions: v0001"):
        registry.resolve("v0009")
    with pytest.raises(UserError, match="unknown model 'best'"):
        registry.resolve("best")


def test_a_pinned_version_resolves_from_its_files_and_never_to_another_run(
    tmp_path: Path, model_file: Path, plot: Path
) -> None:
    store = tmp_path / "reg"
    registry = ModelRegistry(store)
    _register(registry, model_file, plot, 5.0)
    registry.promote("v0001")
    version = registry.resolve("production")
    pin = registry.pin("production")
    assert pin == f"v0001@{version.run_id}"
    # A fresh process resolves the pin to the same files without importing MLflow.
    code = ("import json, sys\n"
            "from model.lifecycle.registry import ModelRegistry\n"
            f"v = ModelRegistry({str(store)!r}).resolve({pin!r})\n"
            "print(json.dumps([v.version, str(v.model_path), v.run_id, v.test_mae, v.image_size,"
            " 'mlflow' in sys.modules]))")
    shown = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                      check=True, cwd=PROJECT_ROOT).stdout)
    assert shown == ["v0001", str(version.model_path), version.run_id, 5.0, 12, False]
    with pytest.raises(UserError, match="loose model file"):
        registry.pin(str(model_file))

    # A pin whose run's files are not here is checked against the registry: a registry
    # recreated since (its v0001 another run) or a version that no longer exists is refused.
    other_run = "0" * 32
    with pytest.raises(UserError, match=rf"v0001 .* is now run {version.run_id}, not the pinned "
                                        rf"run {other_run}"):
        registry.resolve(f"v0001@{other_run}")
    with pytest.raises(UserError, match="unknown model version 'v0002'"):
        registry.resolve(f"v0002@{other_run}")


def test_gate_refuses_a_model_above_the_maximum(tmp_path: Path, model_file: Path, plot: Path) -> None:
    registry = ModelRegistry(tmp_path)
    _register(registry, model_file, plot, 9.25)
    result = registry.promote("v0001", max_mae=8.0)
    assert not result.promoted
    assert result.reason == "v0001: test MAE 9.25 is above the maximum 8.00"
    assert registry.production() is None
    _register(registry, model_file, plot, None)
    assert registry.promote("v0002").reason == "v0002 has no test MAE"


def test_gate_compares_with_production_within_tolerance(
    tmp_path: Path, model_file: Path, plot: Path
) -> None:
    registry = ModelRegistry(tmp_path)
    for mae in (5.0, 5.2, 5.08):
        _register(registry, model_file, plot, mae)
    first = registry.promote("v0001")
    assert first.promoted and first.previous is None
    worse = registry.promote("v0002", tolerance=0.1)
    assert not worse.promoted and worse.previous == "v0001"
    assert worse.reason == ("v0002: test MAE 5.20 is worse than production v0001's 5.00 by "
                            "0.20 years (tolerance 0.10)")
    assert registry.production().version == "v0001"
    within = registry.promote("v0003", tolerance=0.1)
    assert within.promoted and within.previous == "v0001"
    assert registry.production().version == "v0003"
    assert not registry.promote("v0003").promoted  # already production
    with pytest.raises(UserError):
        registry.promote("v0042")
    with pytest.raises(UserError, match="not a version"):
        registry.promote(str(registry.resolve("v0001").model_path))  # a path, not a version


def test_rollback_walks_back_the_promotion_history(
    tmp_path: Path, model_file: Path, plot: Path
) -> None:
    registry = ModelRegistry(tmp_path)
    with pytest.raises(UserError, match="nothing to roll back"):
        registry.rollback()
    for mae in (6.0, 5.0, 4.0):
        registry.promote(_register(registry, model_file, plot, mae))
    assert registry.production().version == "v0003"
    assert registry.rollback().version == "v0002"
    assert registry.rollback().version == "v0001"
    assert registry.production().version == "v0001"
    with pytest.raises(UserError, match="no earlier version"):
        registry.rollback()
    assert [(e["event"], e["version"], e["previous"]) for e in registry.history()] == [
        ("promote", "v0001", None), ("promote", "v0002", "v0001"), ("promote", "v0003", "v0002"),
        ("rollback", "v0002", "v0003"), ("rollback", "v0001", "v0002")]
    # The alias is MLflow's own: any MLflow client resolves models:/checkout-age@production.
    alias = registry.client.get_model_version_by_alias(REGISTERED_MODEL, "production")
    assert int(alias.version) == 1


def test_failed_alias_write_leaves_production_intact(
    tmp_path: Path, model_file: Path, plot: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = ModelRegistry(tmp_path)
    for mae in (5.0, 4.0):
        _register(registry, model_file, plot, mae)
    registry.promote("v0001")

    def database_gone(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(registry.client, "set_registered_model_alias", database_gone)
    with pytest.raises(OSError, match="No space left"):
        registry.promote("v0002")
    monkeypatch.undo()
    assert registry.production().version == "v0001"
    assert [e["version"] for e in registry.history()] == ["v0001"]
    assert registry.promote("v0002").promoted
    assert registry.rollback().version == "v0001"


def test_process_killed_mid_promotion_leaves_production_intact(
    tmp_path: Path, model_file: Path, plot: Path
) -> None:
    registry = ModelRegistry(tmp_path)
    for mae in (5.0, 4.0):
        _register(registry, model_file, plot, mae)
    registry.promote("v0001")
    # The child writes v0002's rollback stack, then dies (SIGKILL) instead of moving the alias.
    script = (
        "import os, signal, sys\n"
        "from model.lifecycle.registry import ModelRegistry\n"
        "r = ModelRegistry(sys.argv[1])\n"
        "r.client.set_registered_model_alias = lambda *a: os.kill(os.getpid(), signal.SIGKILL)\n"
        "r.promote('v0002')\n"
    )
    child = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=PROJECT_ROOT,
                           capture_output=True, timeout=180)
    assert child.returncode == -9, child.stderr
    assert registry.production().version == "v0001"
    assert registry.list_versions()[0]["production"]
    assert registry.promote("v0002").promoted  # the lock died with the child: still works
    assert registry.rollback().version == "v0001"


def test_two_promotions_at_once_are_serialised(
    tmp_path: Path, model_file: Path, plot: Path
) -> None:
    """Each promotion reads production, waits a second, then moves the alias. Unserialised,
    both would compare against v0001 and pass; serialised, the second compares against the
    first's result, so production ends at v0002 (MAE 4.00) whichever runs first."""
    registry = ModelRegistry(tmp_path)
    for mae in (5.0, 4.0, 4.05):
        _register(registry, model_file, plot, mae)
    registry.promote("v0001")
    script = (
        "import sys, time\n"
        "from model.lifecycle.registry import ModelRegistry\n"
        "r = ModelRegistry(sys.argv[1])\n"
        "read = r.production\n"
        "r.production = lambda: (read(), time.sleep(1.0))[0]\n"
        "print(r.promote(sys.argv[2], tolerance=0.0).promoted)\n"
    )
    children = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path), version],
                                 cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True) for version in ("v0002", "v0003")]
    outcomes = [child.communicate(timeout=240) for child in children]
    assert [child.returncode for child in children] == [0, 0], [err for _, err in outcomes]
    assert registry.production().version == "v0002"
    events = registry.history()
    assert [e["previous"] for e in events[1:]] == [e["version"] for e in events[:-1]]
