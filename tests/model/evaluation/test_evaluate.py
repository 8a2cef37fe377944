"""Evaluation on labelled folders: which rows count, and the figures of a real model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from jobs.cli.main import main as cli_main
from jobs.cli.training import EXIT_GATE_REFUSED
from model.errors import UserError
from model.evaluation.evaluate import calibrate_model, evaluate_model, select_rows
from model.lifecycle.registry import ModelRegistry, ModelVersion

TEST_SHA = "0" * 64  # content-hash position 0.0 -> test split
VALID_SHA = "1a" + "0" * 62  # position 0x1a / 256 = 0.1016 -> valid split
TRAIN_SHA = "f" * 64
OTHER_SHA = "e" * 64  # a train-split position, but an image this model never saw


def _version(tmp_path: Path) -> ModelVersion:
    (tmp_path / "training_images.txt").write_text(f"{VALID_SHA}\n{TRAIN_SHA}\n")
    return ModelVersion("v0007", tmp_path / "model.keras", {}, {"dataset_fingerprint": "fp-own"},
                        tmp_path)


def _usable() -> pd.DataFrame:
    shas = [TEST_SHA, VALID_SHA, TRAIN_SHA, OTHER_SHA]
    return pd.DataFrame({"file_name": list("abcd"), "real_age": [20.0, 30, 40, 50], "sha256": shas})


def test_own_training_set_defaults_to_its_test_split(tmp_path: Path) -> None:
    rows, rule, seen = select_rows(_usable(), "fp-own", _version(tmp_path), "auto")
    assert (list(rows["file_name"]), rule, seen) == (["a"], "test", 2)


def test_foreign_folder_defaults_to_rows_the_model_never_saw(tmp_path: Path) -> None:
    rows, rule, seen = select_rows(_usable(), "fp-other", _version(tmp_path), "auto")
    assert (list(rows["file_name"]), rule, seen) == (["a", "d"], "unseen", 2)


def test_explicit_splits(tmp_path: Path) -> None:
    version = _version(tmp_path)
    rows, rule, _ = select_rows(_usable(), "fp-other", version, "all")
    assert (list(rows["file_name"]), rule) == (["a", "b", "c", "d"], "all")
    rows, rule, _ = select_rows(_usable(), "fp-other", version, "test")
    assert (list(rows["file_name"]), rule) == (["a"], "test")
    loose = ModelVersion("m", tmp_path / "m.keras")  # no config, no training list
    assert select_rows(_usable(), "fp-own", loose, "auto")[1:] == ("unseen", 0)
    with pytest.raises(UserError, match="split must be one of"):
        select_rows(_usable(), "fp-own", version, "train")


@pytest.mark.slow
def test_evaluating_the_training_folder_reproduces_the_registered_test_figures(
    trained_registry: Path, small_faces_dir: Path, tmp_path: Path
) -> None:
    version = ModelRegistry(trained_registry).resolve("production")
    result = evaluate_model("production", small_faces_dir, registry_root=trained_registry,
                            cache_dir=tmp_path)
    assert result["split"] == "test" and result["model"] == "v0001"
    assert result["n"] == version.config["rows"]["test"]
    assert result["mae"] == pytest.approx(version.metrics["test"]["mae"], abs=1e-3)
    assert result["rows_seen_in_training"] == (version.config["rows"]["train"]
                                               + version.config["rows"]["valid"])


@pytest.mark.slow
def test_foreign_folder_excludes_copied_training_photos(
    trained_registry: Path, small_faces_dir: Path, faces_dir: Path, tmp_path: Path
) -> None:
    version = ModelRegistry(trained_registry).resolve("v0001")
    small = pd.read_csv(small_faces_dir / "labels.csv", dtype=str)
    seen_hashes = set((version.path / "training_images.txt").read_text().split())
    from model.data.dataset import validate_dataset

    usable = validate_dataset(small_faces_dir).usable
    copied_seen = usable[usable["sha256"].isin(seen_hashes)].head(12)
    full = pd.read_csv(faces_dir / "labels.csv", dtype=str)
    fresh = full[~full["file_name"].isin(small["file_name"])].iloc[::997].head(15)
    folder = tmp_path / "foreign"
    (folder / "final_files").mkdir(parents=True)
    for name in copied_seen["file_name"]:
        shutil.copy(small_faces_dir / "final_files" / name, folder / "final_files" / name)
    for name in fresh["file_name"]:
        shutil.copy(faces_dir / "final_files" / name, folder / "final_files" / name)
    labels = pd.concat([small[small["file_name"].isin(copied_seen["file_name"])], fresh])
    labels.to_csv(folder / "labels.csv", index=False)

    result = evaluate_model("v0001", folder, registry_root=trained_registry,
                            cache_dir=tmp_path / "cache")
    fresh_usable = result["rows_usable"] - 12
    assert result["split"] == "unseen" and result["rows_seen_in_training"] == 12
    assert result["n"] == fresh_usable and 10 <= fresh_usable <= 15
    everything = evaluate_model("v0001", folder, registry_root=trained_registry,
                                cache_dir=tmp_path / "cache", split="all")
    assert everything["n"] == result["rows_usable"]


@pytest.mark.slow
def test_cli_evaluate_json(
    trained_registry: Path, small_faces_dir: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MODEL_REGISTRY", str(trained_registry))
    monkeypatch.setenv("CHECKOUT_AGE_CACHE_DIR", str(tmp_path))
    assert cli_main(["model", "evaluate", "--faces", str(small_faces_dir), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("n", "mae", "rmse", "by_band", "by_gender", "minors_pred_ge_legal",
                "minors_pred_ge_challenge", "young_adults_pred_lt_legal"):
        assert key in result
    assert len(result["by_band"]) == 8 and result["split"] == "test"
    assert cli_main(["model", "evaluate", "--model", "v0042", "--faces", str(small_faces_dir)]) == 2
    assert "unknown model version 'v0042'" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_registry_commands(
    trained_registry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = tmp_path / "registry"
    shutil.copytree(trained_registry, root)  # the shared fixture stays untouched
    registry = ModelRegistry(root)
    first = registry.resolve("v0001")
    mae = first.metrics["test"]["mae"]
    registry.register(first.model_path, {"test": {"mae": mae + 0.05}}, first.config,
                      first.config["dataset_fingerprint"], "# card\n", [])
    monkeypatch.setenv("MODEL_REGISTRY", str(root))

    assert cli_main(["model", "promote", "v0002", "--max-mae", "1"]) == EXIT_GATE_REFUSED
    assert f"refused: v0002: test MAE {mae + 0.05:.2f} is above the maximum 1.00" in (
        capsys.readouterr().out)
    assert cli_main(["model", "promote", "v0002", "--max-mae", "100", "--tolerance", "0.1"]) == 0
    assert (f"promoted: v0002: test MAE {mae + 0.05:.2f} <= 100.00, production v0001 had "
            f"{mae:.2f}") in capsys.readouterr().out
    assert cli_main(["model", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("  v0001") and lines[1].startswith("* v0002")
    assert cli_main(["model", "show", "production", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["version"] == "v0002"
    assert cli_main(["model", "show", "production", "--version-only"]) == 0
    assert capsys.readouterr().out == "v0002\n"  # what the daily DAG pins as its XCom
    assert cli_main(["model", "rollback"]) == 0
    assert "production is now v0001" in capsys.readouterr().out
    assert cli_main(["model", "rollback"]) == 2
    assert "no earlier version" in capsys.readouterr().err


def _foreign_folder(faces_dir: Path, small_faces_dir: Path, folder: Path, count: int,
                    offset: int) -> Path:
    """`count` real faces of the full set outside the small training set, spread over ages."""
    small = pd.read_csv(small_faces_dir / "labels.csv", dtype=str)
    full = pd.read_csv(faces_dir / "labels.csv", dtype=str)
    fresh = full[~full["file_name"].isin(small["file_name"])].iloc[offset::101].head(count)
    (folder / "final_files").mkdir(parents=True)
    for name in fresh["file_name"]:
        shutil.copy(faces_dir / "final_files" / name, folder / "final_files" / name)
    fresh.to_csv(folder / "labels.csv", index=False)
    return folder


@pytest.mark.slow
def test_calibrate_registers_a_calibrated_copy_and_evaluate_reports_its_figures(
    trained_registry: Path, small_faces_dir: Path, faces_dir: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    root = tmp_path / "registry"
    shutil.copytree(trained_registry, root)
    monkeypatch.setenv("MODEL_REGISTRY", str(root))
    monkeypatch.setenv("CHECKOUT_AGE_CACHE_DIR", str(tmp_path / "cache"))
    # The smoke model's validation split (~30 faces) is too small to calibrate at training.
    assert not (root / "versions" / "v0001" / "calibration.json").exists()
    assert cli_main(["model", "evaluate", "--model", "v0001", "--faces", str(small_faces_dir),
                     "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["calibration"] is None

    calib = _foreign_folder(faces_dir, small_faces_dir, tmp_path / "calib", 160, offset=0)
    assert cli_main(["model", "calibrate", "--model", "v0001", "--faces", str(calib),
                     "--json"]) == 0
    made = json.loads(capsys.readouterr().out)
    assert (made["version"], made["calibrated_from"]) == ("v0002", "v0001")
    assert made["rows_fit"] + made["rows_check"] <= 160 and made["rows_fit"] >= 50
    version = ModelRegistry(root).resolve("v0002")
    assert (version.path / "calibration.json").is_file()
    assert (version.path / "plots" / "reliability.png").is_file()
    assert version.config["calibrated_from"] == "v0001"
    assert "## Calibration (measured on" in (version.path / "card.md").read_text()

    check = _foreign_folder(faces_dir, small_faces_dir, tmp_path / "check", 60, offset=50)
    assert cli_main(["model", "evaluate", "--model", "v0002", "--faces", str(check),
                     "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    figures = result["calibration"]
    assert figures["n"] == result["n"] and figures["coverage_target"] == 0.8
    assert 0 <= figures["coverage"] <= 1 and 0 <= figures["brier"] <= 1
    assert set(figures["coverage_by_band"]) == set(result["by_band"])
    assert sum(row["n"] for row in figures["reliability"]) == result["n"]


@pytest.mark.slow
def test_calibrate_refuses_faces_the_model_trained_on(
    trained_registry: Path, small_faces_dir: Path, faces_dir: Path, tmp_path: Path,
) -> None:
    root = tmp_path / "registry"
    shutil.copytree(trained_registry, root)
    version = ModelRegistry(root).resolve("v0001")
    with pytest.raises(UserError, match="own training set"):
        calibrate_model("v0001", small_faces_dir, registry_root=root, cache_dir=tmp_path)
    folder = _foreign_folder(faces_dir, small_faces_dir, tmp_path / "mixed", 80, offset=7)
    seen = set((version.path / "training_images.txt").read_text().split())
    from model.data.dataset import validate_dataset

    usable = validate_dataset(small_faces_dir).usable
    one = usable[usable["sha256"].isin(seen)].iloc[0]
    shutil.copy(small_faces_dir / "final_files" / one["file_name"],
                folder / "final_files" / one["file_name"])
    labels = pd.read_csv(folder / "labels.csv", dtype=str)
    small = pd.read_csv(small_faces_dir / "labels.csv", dtype=str)
    pd.concat([labels, small[small["file_name"] == one["file_name"]]]).to_csv(
        folder / "labels.csv", index=False)
    with pytest.raises(UserError, match="1 of .* usable faces .* trained v0001"):
        calibrate_model("v0001", folder, registry_root=root, cache_dir=tmp_path)
    assert [v["version"] for v in ModelRegistry(root).list_versions()] == ["v0001"]
