"""`model register`: a model file trained elsewhere becomes a version, evaluated here; files that
are not compatible age models are refused with a clear error."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import keras
import pytest

from jobs.cli.main import main as cli_main
from jobs.cli.training import EXIT_GATE_REFUSED
from model.errors import UserError
from model.lifecycle.import_model import check_age_model_file, import_model
from model.lifecycle.registry import ModelRegistry

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained_elsewhere(trained_registry: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real trained model file outside any registry, with a GPU-style run summary."""
    folder = tmp_path_factory.mktemp("gpu_out")
    version = ModelRegistry(trained_registry).resolve("v0001")
    shutil.copy(version.model_path, folder / "model.keras")
    (folder / "model.keras").chmod(0o644)
    run = {"config": {k: version.config[k] for k in ("backbone", "size", "head", "weights",
                                                     "head_epochs", "epochs", "seed")},
           "epochs_run": 1, "device": "NVIDIA H100 80GB HBM3 (cuda:0)", "fit_seconds": 12.5}
    run["config"]["profile"] = "gpu"
    (folder / "train_gpu.json").write_text(json.dumps(run))
    return folder


def test_import_registers_the_file_with_its_card_and_figures_measured_here(
    trained_elsewhere: Path, trained_registry: Path, small_faces_dir: Path, tmp_path: Path,
) -> None:
    result = import_model(trained_elsewhere / "model.keras", small_faces_dir,
                          registry_root=tmp_path / "reg", cache_dir=tmp_path / "cache",
                          run_json=trained_elsewhere / "train_gpu.json")
    registry = ModelRegistry(tmp_path / "reg")
    assert result.version == "v0001" and registry.production() is None  # never promoted
    version = registry.resolve("v0001")
    config = version.config
    assert config["imported_from"] == str((trained_elsewhere / "model.keras").resolve())
    assert (config["profile"], config["device"], config["size"]) == (
        "gpu", "NVIDIA H100 80GB HBM3 (cuda:0)", 96)
    card = (version.path / "card.md").read_text()
    assert "trained elsewhere and imported from" in card and "NVIDIA H100" in card
    assert sorted(p.name for p in (version.path / "plots").iterdir())[:1] == ["mae_by_band.png"]
    assert (version.path / "training_images.txt").is_file()
    # Same model, same face set, same content-hash split: the figures training measured.
    original = ModelRegistry(trained_registry).resolve("v0001").metrics["test"]
    assert version.metrics["test"]["n"] == original["n"]
    assert version.metrics["test"]["mae"] == pytest.approx(original["mae"], abs=1e-4)


def test_imported_versions_go_through_the_gate_with_a_dedicated_exit_status(
    trained_elsewhere: Path, small_faces_dir: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MODEL_REGISTRY", str(tmp_path / "reg"))
    monkeypatch.setenv("CHECKOUT_AGE_CACHE_DIR", str(tmp_path / "cache"))
    assert cli_main(["model", "register", str(trained_elsewhere / "model.keras"), "--faces",
                     str(small_faces_dir), "--version-only"]) == 0
    assert capsys.readouterr().out == "v0001\n"
    assert cli_main(["model", "promote", "v0001", "--max-mae", "1.0"]) == EXIT_GATE_REFUSED
    assert "refused: v0001: test MAE" in capsys.readouterr().out
    assert cli_main(["model", "promote", "v0009"]) == 2  # a wrong argument, not a refusal
    assert "unknown model version 'v0009'" in capsys.readouterr().err
    assert cli_main(["model", "promote", "v0001", "--max-mae", "100"]) == 0
    assert ModelRegistry(tmp_path / "reg").production().version == "v0001"


def test_a_file_that_is_not_a_keras_model_is_refused(tmp_path: Path) -> None:
    text = tmp_path / "model.keras"
    text.write_text("weights, honest")
    with pytest.raises(UserError, match="is not a Keras model file"):
        check_age_model_file(text)
    archive = tmp_path / "other.keras"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("readme.txt", "a zip, but no model")
    with pytest.raises(UserError, match="cannot load model"):
        check_age_model_file(archive)
    with pytest.raises(UserError, match="model file not found"):
        check_age_model_file(tmp_path / "absent.keras")


@pytest.mark.parametrize(("shape", "outputs", "message"), [
    ((96, 96, 1), 1, r"input shape \(None, 96, 96, 1\), expected \(None, S, S, 3\)"),
    ((96, 64, 3), 1, r"input shape \(None, 96, 64, 3\)"),
    ((96, 96, 3), 101, r"output shape \(None, 101\), expected \(None, 1\)"),
])
def test_a_model_of_the_wrong_shape_is_refused(
    tmp_path: Path, shape: tuple, outputs: int, message: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, small_faces_dir: Path,
) -> None:
    inputs = keras.Input(shape)
    model = keras.Model(inputs, keras.layers.Dense(outputs)(
        keras.layers.GlobalAveragePooling2D()(inputs)))
    path = tmp_path / "wrong.keras"
    model.save(path)
    with pytest.raises(UserError, match=message):
        check_age_model_file(path)
    monkeypatch.setenv("MODEL_REGISTRY", str(tmp_path / "reg"))
    assert cli_main(["model", "register", str(path), "--faces", str(small_faces_dir)]) == 2
    assert "is not a compatible age model" in capsys.readouterr().err
    assert not (tmp_path / "reg").exists()
