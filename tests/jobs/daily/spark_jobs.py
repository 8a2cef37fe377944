"""Test helper: the spark-submit command of a daily job, as Airflow's SparkSubmitOperator runs it."""

from __future__ import annotations

import sys
from pathlib import Path

JOBS = Path(__file__).resolve().parents[3] / "jobs" / "daily"


def submit_command(job: str, master: str, *args: str) -> list[str]:
    """`spark-submit jobs/daily/<job>.py ...`: the command Airflow's SparkSubmitOperator runs."""
    script = {"score": "score_photos.py", "reports": "reports.py"}[job]
    return [str(Path(sys.executable).parent / "spark-submit"), "--master", master,
            "--driver-memory", "1g", "--conf", f"spark.pyspark.python={sys.executable}",
            str(JOBS / script), *args]


def untrained_registry(root: Path, versions: int = 1, artifact: bool = False) -> Path:
    """A registry with `versions` real but untrained 96 px models, v0001 in production.

    For tests about processes and engines, not accuracy: no training (seconds, not minutes), and
    each further version is v0001 with its output moved by 15 years, so their predictions differ.
    `artifact`: each version also gets its serving artifact, verified on 16 random images (the
    score job then takes the serving path); without, versions score through Keras.
    """
    import keras
    import numpy as np

    from model.lifecycle.registry import ModelRegistry
    from model.serving.artifact import artifact_files, build_artifact
    from model.serving.net import build_age_model
    from model.serving.predict import predict_ages

    registry = ModelRegistry(root)
    keras.utils.set_random_seed(3)
    model = build_age_model("mobilenet_v2", 96, weights=None)
    last = [layer for layer in model.layers if layer.get_weights()][-1]
    for number in range(versions):
        if number:
            weights = last.get_weights()
            weights[-1] = weights[-1] + 15.0
            last.set_weights(weights)
        path = root.parent / f"untrained-{number}.keras"
        model.save(path)
        files = {}
        if artifact:
            images = np.random.default_rng(number).integers(0, 256, (16, 96, 96, 3), np.uint8)
            out = root.parent / f"untrained-{number}-serving"
            ages = predict_ages(model, images)
            assert build_artifact(model, out, images, ages, ages)["verified"]
            files = artifact_files(out)
        registry.register(path, {"test": {"mae": 12.0}}, {"size": 96, "backbone": "mobilenet_v2"},
                          "untrained", "untrained test model", [], extra_files=files)
    assert registry.promote("v0001", max_mae=100.0).promoted
    return root
