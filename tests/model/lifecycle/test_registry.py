"""File registry: versions, the promotion gate, rollback and a crash-safe production alias."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import keras
import pytest

from model.errors import UserError
from model.lifecycle import registry as registry_module
from model.lifecycle.registry import ModelRegistry

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
    folder = tmp_path / "reg" / "versions" / "v0001"
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) == [
        "card.md", "config.json", "metrics.json", "model.keras", "plots", "plots/residuals.png"]
    config = json.loads((folder / "config.json").read_text())
    assert config["dataset_fingerprint"] == "f" * 64 and config["seed"] == 1
    assert not (folder / "model.keras").stat().st_mode & 0o222  # read-only
    assert [p.name for p in (tmp_path / "reg" / "versions").iterdir() if p.name.startswith(".")] == []


def test_list_and_resolve(tmp_path: Path, model_file: Path, plot: Path) -> None:
    registry = ModelRegistry(tmp_path)
    assert registry.list_versions() == [] and registry.production() is None
    with pytest.raises(UserError, match="no production model"):
        registry.resolve("production")
    _register(registry, model_file, plot, 5.0)
    (tmp_path / "versions" / ".staging-crashed").mkdir()  # a registration killed midway
    registry.promote("v0001")
    rows = registry.list_versions()
    assert [(r["version"], r["production"], r["test_mae"]) for r in rows] == [("v0001", True, 5.0)]
    version = registry.resolve("v0001")
    assert version.model_path == tmp_path / "versions" / "v0001" / "model.keras"
    assert version.image_size == 12 and version.test_mae == 5.0
    assert registry.resolve("production").version == "v0001"
    loose = registry.resolve(str(model_file))  # a .keras file outside any registry
    assert loose.version == "tiny" and loose.image_size == 12 and loose.metrics == {}
    assert registry.resolve(str(tmp_path / "versions" / "v0001")).version == "v0001"
    with pytest.raises(UserError, match=r"unknown model version 'v0009'.*versions: v0001"):
        registry.resolve("v0009")
    with pytest.raises(UserError, match="unknown model 'best'"):
        registry.resolve("best")


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
    events = [json.loads(line) for line in (tmp_path / "aliases" / "history.jsonl").open()]
    assert [(e["event"], e["version"]) for e in events] == [
        ("promote", "v0001"), ("promote", "v0002"), ("promote", "v0003"),
        ("rollback", "v0002"), ("rollback", "v0001")]


def test_failed_alias_write_leaves_production_intact(
    tmp_path: Path, model_file: Path, plot: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = ModelRegistry(tmp_path)
    for mae in (5.0, 4.0):
        _register(registry, model_file, plot, mae)
    registry.promote("v0001")

    def disk_full(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(registry_module.os, "replace", disk_full)
    with pytest.raises(OSError, match="No space left"):
        registry.promote("v0002")
    monkeypatch.undo()
    assert registry.production().version == "v0001"
    assert sorted(p.name for p in (tmp_path / "aliases").iterdir()) == ["history.jsonl", "production"]
    assert registry.promote("v0002").promoted


def test_process_killed_mid_promotion_leaves_production_intact(
    tmp_path: Path, model_file: Path, plot: Path
) -> None:
    registry = ModelRegistry(tmp_path)
    for mae in (5.0, 4.0):
        _register(registry, model_file, plot, mae)
    registry.promote("v0001")
    # The child writes the new alias to its temp file, then dies (SIGKILL) instead of renaming.
    script = (
        "import os, signal, sys\n"
        "from model.lifecycle import registry as r\n"
        "r.os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)\n"
        "r.ModelRegistry(sys.argv[1]).promote('v0002')\n"
    )
    child = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=PROJECT_ROOT,
                           capture_output=True, timeout=60)
    assert child.returncode == -9, child.stderr
    leftovers = [p.name for p in (tmp_path / "aliases").iterdir() if ".tmp-" in p.name]
    assert len(leftovers) == 1  # the dead process's half-done write, never read
    assert registry.production().version == "v0001"
    assert registry.list_versions()[0]["production"]
    assert registry.promote("v0002").promoted  # the registry still works afterwards
    assert registry.rollback().version == "v0001"
