"""`model migrate-registry`: an old file registry's versions, files and production into MLflow."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import pytest

from jobs.cli.main import main as cli_main
from model.errors import UserError
from model.lifecycle.registry import ModelRegistry


def _old_registry(root: Path) -> Path:
    """A file registry as earlier checkouts wrote it: two versions, production v0003 over v0001
    (version numbers need not be contiguous)."""
    inputs = keras.Input((12, 12, 3))
    outputs = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling2D()(inputs))
    model = keras.Model(inputs, outputs)
    for old, mae in (("v0001", 6.5), ("v0003", 5.5)):
        folder = root / "versions" / old
        (folder / "plots").mkdir(parents=True)
        model.save(folder / "model.keras")
        (folder / "metrics.json").write_text(json.dumps({"test": {"n": 30, "mae": mae}}))
        (folder / "config.json").write_text(json.dumps(
            {"size": 12, "backbone": "tiny", "dataset_fingerprint": "a" * 64}))
        (folder / "card.md").write_text(f"# card of {old}\n")
        (folder / "plots" / "mae_by_band.png").write_bytes(b"\x89PNG\r\n\x1a\n" + old.encode())
        (folder / "training_images.txt").write_text("b" * 64 + "\n")
    (root / "versions" / "v0003" / "calibration.json").write_text('{"format": 1}')
    (root / "aliases").mkdir()
    (root / "aliases" / "production").write_text(
        json.dumps({"version": "v0003", "previous": ["v0001"]}))
    return root


def test_migration_imports_versions_files_and_production_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    old = _old_registry(tmp_path / "old")
    monkeypatch.setenv("MODEL_REGISTRY", str(tmp_path / "mlflow"))
    assert cli_main(["model", "migrate-registry", str(old), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result == {"imported": {"v0001": "v0001", "v0003": "v0002"}, "skipped": [],
                      "production": "v0002"}
    registry = ModelRegistry(tmp_path / "mlflow")
    new = registry.resolve("production")
    assert new.version == "v0002" and new.test_mae == 5.5
    assert (new.path / "card.md").read_text() == "# card of v0003\n"
    assert (new.path / "calibration.json").read_text() == '{"format": 1}'
    assert (new.path / "plots" / "mae_by_band.png").read_bytes().endswith(b"v0003")
    assert new.config["migrated_from"] == f"{old.resolve()}:v0003"
    assert (new.path / "model.keras").read_bytes() == (
        old / "versions" / "v0003" / "model.keras").read_bytes()
    assert registry.rollback().version == "v0001"  # the old rollback stack came along

    assert cli_main(["model", "migrate-registry", str(old), "--json"]) == 0  # a rerun
    again = json.loads(capsys.readouterr().out)
    assert again["imported"] == {} and again["skipped"] == ["v0001", "v0003"]
    assert [row["version"] for row in registry.list_versions()] == ["v0001", "v0002"]
    # The rollback since the first run stands: a rerun never moves production.
    assert again["production"] == "v0001" and registry.production().version == "v0001"


def test_a_folder_that_is_not_a_file_registry_is_refused(tmp_path: Path) -> None:
    from model.lifecycle.migrate import migrate_file_registry

    with pytest.raises(UserError, match="not a file registry"):
        migrate_file_registry(tmp_path, ModelRegistry(tmp_path / "mlflow"))
