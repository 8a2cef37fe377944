"""A real (small) training run: what it records, and that the model it makes works."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pytest

from jobs.cli.main import build_parser
from jobs.cli.main import main as cli_main
from jobs.cli.training import _CONFIG_FLAGS, train_config_from_args
from model.config import Settings
from model.data.dataset import validate_dataset
from model.data.split import assign_splits
from model.errors import UserError
from model.lifecycle.registry import ModelRegistry
from model.serving.net import load_age_model, model_input_size
from model.serving.predict import predict_ages
from model.training.profiles import train_config
from model.training.train import _precision_policy

pytestmark = pytest.mark.slow


def assert_command_repeats_the_run(config: dict) -> None:
    """The recorded command, parsed by the CLI itself, gives the run's every knob again."""
    args = build_parser().parse_args(shlex.split(config["command"])[1:])
    again = train_config_from_args(args, Settings())
    for name in _CONFIG_FLAGS:
        value = getattr(again, name)
        assert (list(value) if isinstance(value, tuple) else value) == config[name], name


@pytest.fixture(scope="module")
def split_rows(small_faces_dir: Path):
    report = validate_dataset(small_faces_dir)
    return report, assign_splits(report.usable)


def test_trained_version_records_its_run(trained_registry: Path, split_rows) -> None:
    report, rows = split_rows
    registry = ModelRegistry(trained_registry)
    assert [v["version"] for v in registry.list_versions()] == ["v0001"]
    version = registry.resolve("production")
    assert version.version == "v0001"
    config = version.config
    assert (config["size"], config["backbone"], config["seed"]) == (96, "mobilenet_v2", 1337)
    assert (config["profile"], config["feature_cache"]) == ("gpu", False)
    assert config["dataset_fingerprint"] == report.fingerprint
    counts = rows["split"].value_counts()
    assert config["rows"] == {name: int(counts[name]) for name in ("train", "valid", "test")}
    assert [h["phase"] for h in config["history"]] == ["head", "head", "full"]
    assert config["epochs_run"] == 1 and config["best_epoch"] == 3
    assert all(np.isfinite(h["val_mae"]) and h["images_per_s"] > 0 for h in config["history"])
    # The test suite runs on CPU machines (the GPU kit is bench/run_gpu.sh): no mixed precision,
    # and the saved model is float32 whatever the run computed in.
    assert config["dtype_policy"] == "float32"
    model = load_age_model(version.model_path)
    assert {w.dtype for w in model.weights} == {"float32"}
    seen = (version.path / "training_images.txt").read_text().split()
    assert sorted(seen) == sorted(rows.loc[rows["split"] != "test", "sha256"])


def test_trained_model_learnt_something(trained_registry: Path, split_rows) -> None:
    """Loads, takes raw pixels, and beats always guessing the training mean on the test split."""
    _, rows = split_rows
    version = ModelRegistry(trained_registry).resolve("production")
    test = version.metrics["test"]
    train_ages = rows.loc[rows["split"] == "train", "real_age"]
    test_ages = rows.loc[rows["split"] == "test", "real_age"]
    guess_mean_mae = float(np.abs(test_ages - train_ages.mean()).mean())
    assert test["n"] == len(test_ages)
    assert test["mae"] < guess_mean_mae - 1.0, (test["mae"], guess_mean_mae)
    assert set(test["by_gender"]) <= {"female", "male", "unknown"}

    # The stored model reproduces the recorded test figure: predicted again here from its file,
    # the test split's MAE is the one registered (a model file that is not the one evaluated,
    # or a metric computed on other rows, would not).
    model = load_age_model(version.model_path)
    assert model_input_size(model) == 96
    from model.data.image_cache import load_images

    test_rows = rows[rows["split"] == "test"]
    images = load_images(test_rows, 96, trained_registry.parent / "evalcache", "fp")
    ages = predict_ages(model, np.asarray(images), batch_size=8)
    recomputed = float(np.abs(ages - test_rows["real_age"].to_numpy()).mean())
    assert recomputed == pytest.approx(test["mae"], abs=0.01)


def test_training_is_an_mlflow_run(trained_registry: Path, split_rows) -> None:
    """The run behind v0001: its params, per-epoch figures, test figures and files."""
    report, _ = split_rows
    registry = ModelRegistry(trained_registry)
    version = registry.resolve("v0001")
    run = registry.client.get_run(version.run_id)
    assert run.info.run_name == "train" and run.info.status == "FINISHED"
    params = run.data.params
    assert (params["profile"], params["size"], params["backbone"], params["seed"],
            params["batch_size"]) == ("gpu", "96", "mobilenet_v2", "1337", "32")
    assert params["dataset_fingerprint"] == report.fingerprint
    assert params["legal_age"] == "18" and "git_commit" in run.data.tags
    history = registry.client.get_metric_history(version.run_id, "epoch.val_mae")
    assert [m.step for m in history] == [1, 2, 3]  # 2 head epochs + 1 fine-tuning epoch
    assert [m.value for m in history] == pytest.approx(
        [h["val_mae"] for h in version.config["history"]])
    assert run.data.metrics["test.mae"] == pytest.approx(version.metrics["test"]["mae"])
    assert run.data.metrics["test.n"] == version.metrics["test"]["n"]
    files = {f.path for f in registry.client.list_artifacts(version.run_id, "version")}
    assert {"version/card.md", "version/config.json", "version/training_images.txt",
            "version/model.keras", "version/plots"} <= files


def test_card_and_plots(trained_registry: Path) -> None:
    version = ModelRegistry(trained_registry).resolve("v0001")
    card = (version.path / "card.md").read_text()
    mae = version.metrics["test"]["mae"]
    assert f"MAE {mae:.2f} years" in card
    assert "| 13-17 |" in card and "Challenge-25" in card
    curve = version.metrics["test"]["policy_curve"]  # on the test split, no calibration here
    assert curve["n_minors"] == version.metrics["test"]["n_minors"]
    assert curve["probability_rules"] is None and len(curve["age_rules"]) == 11
    assert "| estimated age < 25 (*in force*) |" in card
    plots = sorted(p.name for p in (version.path / "plots").iterdir())
    assert plots == ["mae_by_band.png", "predicted_vs_true.png", "residuals_by_age.png"]
    for name in plots:
        assert (version.path / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_train_head_only_without_registry(
    small_faces_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MODEL_REGISTRY", str(tmp_path / "registry"))
    monkeypatch.setenv("CHECKOUT_AGE_CACHE_DIR", str(tmp_path / "cache"))
    # The policy comes from the settings: it must reach the trained model's figures and card.
    monkeypatch.setenv("CHECKOUT_AGE_LEGAL_AGE", "21")
    monkeypatch.setenv("CHECKOUT_AGE_CHALLENGE_AGE", "27")
    out = tmp_path / "run"
    status = cli_main(["model", "train", "--faces", str(small_faces_dir), "--size", "96",
                       "--head-epochs", "1", "--epochs", "0", "--limit", "150",
                       "--batch-size", "32", "--no-register", "--out", str(out), "--json"])
    assert status == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["version"] is None and printed["model_path"] == str(out / "model.keras")
    config = json.loads((out / "config.json").read_text())
    assert sum(config["rows"].values()) == 150 and config["limit"] == 150
    assert config["epochs_run"] == 0
    command = config["command"]  # repeats the run: every flag given, defaults made explicit
    assert command.startswith(f"checkout-age model train --faces {small_faces_dir} ")
    for flag in ("--epochs 0", "--head-epochs 1", "--limit 150", "--seed 1337", "--size 96",
                 "--backbone mobilenet_v2", "--no-register", "--profile cpu",
                 "--batch-size 32"):
        assert flag in command
    assert_command_repeats_the_run(config)
    assert printed["metrics"]["test"]["n"] == config["rows"]["test"]
    test = json.loads((out / "metrics.json").read_text())["test"]
    assert (test["legal_age"], test["challenge_age"]) == (21, 27)
    card = (out / "card.md").read_text()
    assert "True minors (<21" in card and "Challenge-27" in card
    assert load_age_model(out / "model.keras").input_shape == (None, 96, 96, 3)
    assert not (tmp_path / "registry").exists()


def test_cli_train_distils_a_registered_teacher(
    small_faces_dir: Path, trained_registry: Path, split_rows, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """A student run with `--teacher`: the teacher's estimates of the training faces are
    measured and recorded, and the command and MLflow params say which teacher and weight."""
    import shutil

    from model.data.image_cache import load_images

    registry_root = tmp_path / "registry"
    shutil.copytree(trained_registry, registry_root)  # the shared fixture stays untouched
    monkeypatch.setenv("MODEL_REGISTRY", str(registry_root))
    monkeypatch.setenv("CHECKOUT_AGE_CACHE_DIR", str(tmp_path / "cache"))
    status = cli_main(["model", "train", "--faces", str(small_faces_dir), "--size", "96",
                       "--head-epochs", "1", "--epochs", "0", "--limit", "150",
                       "--batch-size", "32", "--teacher", "v0001", "--distill-weight", "0.7",
                       "--json"])
    assert status == 0
    registry = ModelRegistry(registry_root)
    student = registry.resolve(json.loads(capsys.readouterr().out)["version"])
    teacher = registry.resolve("v0001")
    config = student.config
    assert config["teachers"] == ["v0001"] and config["distill_weight"] == 0.7
    assert "--teacher v0001 --distill-weight 0.7" in config["command"]
    [record] = config["teacher_records"]
    assert (record["version"], record["run_id"]) == ("v0001", teacher.run_id)
    # The recorded teacher MAE is that of the teacher's estimates of the student's training
    # faces (the rows of its --limit 150 draw), recomputed here from the teacher's file.
    _, rows = split_rows
    seen = set((student.path / "training_images.txt").read_text().split())
    train = rows[(rows["split"] == "train") & rows["sha256"].isin(seen)]
    assert len(train) == config["rows"]["train"]
    images = np.asarray(load_images(train, 96, tmp_path / "evalcache", "fp"))
    estimates = predict_ages(load_age_model(teacher.model_path), images, batch_size=32)
    mae = float(np.abs(estimates - train["real_age"].to_numpy()).mean())
    assert record["train_mae"] == pytest.approx(mae, abs=0.01)
    params = registry.client.get_run(student.run_id).data.params
    assert (params["teachers"], params["distill_weight"]) == ("v0001", "0.7")


def test_cli_train_cuts_camera_views_around_the_serving_detector(
    small_faces_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """`--camera-detect`: the run's camera views go through `ServedView` (counted in the log)
    and the flag is recorded in the config and the command that repeats the run."""
    monkeypatch.setenv("CHECKOUT_AGE_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "run"
    with caplog.at_level("INFO", logger="model.training.train"):
        status = cli_main(["model", "train", "--faces", str(small_faces_dir), "--size", "96",
                           "--head-epochs", "1", "--epochs", "0", "--limit", "120",
                           "--batch-size", "32", "--camera-share", "0.5", "--camera-detect",
                           "--no-register", "--out", str(out)])
    assert status == 0
    config = json.loads((out / "config.json").read_text())
    assert config["camera_detect"] is True and config["camera_share"] == 0.5
    assert "--camera-share 0.5 --camera-detect " in config["command"] + " "
    assert_command_repeats_the_run(config)
    [line] = [r.getMessage() for r in caplog.records if "serving detector's box" in r.getMessage()]
    seen = int(line.split("box: ")[1].split(",")[0])
    # Each training face's mirrored copy is a camera view with chance 2 x 0.5.
    assert seen == config["rows"]["train"]


def test_camera_detect_needs_camera_views() -> None:
    with pytest.raises(UserError, match="needs --camera-share"):
        train_config(Settings(), "cpu", camera_share=0.0, camera_detect=True)
    # The cpu profile cuts its camera views; with none asked for, there is nothing to cut.
    assert train_config(Settings(), "cpu").camera_detect is True
    assert train_config(Settings(), "cpu", camera_share=0.0).camera_detect is False


def test_distilling_needs_the_registry(
    small_faces_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["model", "train", "--faces", str(small_faces_dir), "--teacher", "v0001",
                     "--no-register", "--out", str(tmp_path / "run")]) == 2
    assert "distillation needs the registry" in capsys.readouterr().err


def test_cli_train_refuses_contradictory_flags(
    small_faces_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["model", "train", "--faces", str(small_faces_dir), "--no-register"]) == 2
    assert "--no-register needs --out" in capsys.readouterr().err


def test_too_few_faces_is_a_user_error(small_faces_dir: Path, tmp_path: Path) -> None:
    from model.training.train import train_model

    with pytest.raises(UserError, match="too few usable faces"):
        train_model(small_faces_dir, train_config(Settings(), "quick", limit=10),
                    cache_dir=tmp_path, registry_store=None)


def test_precision_policy_follows_the_device() -> None:
    for accelerator in (False, True):
        assert _precision_policy("off", accelerator) == "float32"
        assert _precision_policy("on", accelerator) == "mixed_bfloat16"
    assert _precision_policy("auto", False) == "float32"
    assert _precision_policy("auto", True) == "mixed_bfloat16"
    with pytest.raises(UserError, match="mixed precision must be auto, on or off"):
        _precision_policy("maybe", False)
