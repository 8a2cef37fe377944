"""The serving artifact of an age model: its forward pass in a CPU inference runtime.

The `.keras` file stays the source of truth (training, evaluation); the artifact is made from
it when a version is published and is what the score job's workers run, so they never import
TensorFlow or Keras. Two runtimes are supported, both reading a file of their own:

- OpenVINO IR (`age.xml` + `age.bin`, Apache-2.0, package `openvino`): the default. It ran
  MobileNetV2 160 px faster than Keras in fp32 (docs/serving.md); its CPU plugin would pick
  bf16 by itself where the CPU has AVX512_BF16, so the precision is always set explicitly. On a
  CPU without bf16 the plugin runs f32 under a bf16 hint: bf16 is then not measured (and never
  chosen), since its figures would be fp32's and a bf16 CPU would later run it unverified.
- ONNX (`age.onnx`, ONNX Runtime, MIT): the alternative measured beside it.

`export_artifact` needs Keras (publish time); `load_runtime` needs only numpy and the runtime.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from model.lifecycle.publish import ProducedArtifact

OPENVINO, ONNXRUNTIME = "openvino", "onnxruntime"
RUNTIMES = (OPENVINO, ONNXRUNTIME)
FILE_NAMES = {OPENVINO: "age.xml", ONNXRUNTIME: "age.onnx"}
PRECISIONS = ("f32", "bf16")


def export_artifact(model, out_dir: Path | str, runtime: str = OPENVINO) -> Path:  # noqa: ANN001
    """Write `model` (a loaded Keras age model) as `runtime`'s file(s) in `out_dir`; its path.

    The input keeps a free batch dimension; the loader fixes it per call shape.
    """
    import keras

    if runtime not in RUNTIMES:
        raise ValueError(f"runtime {runtime!r}, expected one of {RUNTIMES}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / FILE_NAMES[runtime]
    size = int(model.input_shape[1])
    signature = [keras.InputSpec(shape=(None, size, size, 3), dtype="float32")]
    if runtime == ONNXRUNTIME:
        model.export(str(path), format="onnx", input_signature=signature, verbose=False)
        return path
    # Keras's own OpenVINO export imports its OpenVINO backend (and scipy); OpenVINO's converter
    # reads the TensorFlow SavedModel directly.
    import tempfile

    import openvino as ov

    with tempfile.TemporaryDirectory(prefix="age-savedmodel-", dir=out_dir) as saved:
        model.export(saved, format="tf_saved_model", input_signature=signature, verbose=False)
        converted = ov.convert_model(saved)
    # fp16 weight compression is the converter's default: keep fp32 weights, bf16 is a
    # run-time choice of the loader.
    ov.save_model(converted, str(path), compress_to_fp16=False)
    return path


@dataclass
class AgeRuntime:
    """A loaded artifact: `predict(images)` like `model.predict.predict_ages`, no Keras."""

    runtime: str
    precision: str
    size: int
    _run: object  # callable: float32 (N, S, S, 3) -> (N,) or (N, 1)
    properties: dict = field(default_factory=dict)  # what the runtime compiled with (OpenVINO)

    def predict(self, images: np.ndarray, batch_size: int = 8,
                flip_tta: bool = True) -> np.ndarray:
        """Estimated ages (float32, (N,)) of uint8 (N, S, S, 3) images; flip TTA averaged."""
        if images.ndim != 4:
            raise ValueError(f"expected (N, S, S, 3) images, got shape {images.shape}")
        out = np.empty(len(images), dtype=np.float32)
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size].astype(np.float32)
            n = len(batch)
            if flip_tta:
                batch = np.concatenate([batch, batch[:, :, ::-1, :]])
            pred = np.asarray(self._run(np.ascontiguousarray(batch)), np.float32).reshape(-1)
            out[start:start + n] = (pred[:n] + pred[n:]) / 2 if flip_tta else pred
        return out


def load_runtime(path: Path | str, *, threads: int = 0, precision: str = "f32",
                 cpu_pinning: bool = False) -> AgeRuntime:
    """Load an artifact (`.xml`: OpenVINO, `.onnx`: ONNX Runtime) for inference on the CPU.

    Args:
        path: the artifact file.
        threads: inference threads (0: the runtime's default, every core).
        precision: "f32" (matches Keras) or "bf16" (OpenVINO only: its CPU plugin's reduced
            precision on AVX512_BF16 CPUs).
        cpu_pinning: let OpenVINO bind its inference threads to cores (off: several worker
            processes on one machine would all bind to the same core).
    """
    path = Path(path)
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}, expected one of {PRECISIONS}")
    if path.suffix == ".xml":
        return _openvino(path, threads, precision, cpu_pinning)
    if path.suffix == ".onnx":
        if precision != "f32":
            raise ValueError("ONNX Runtime artifacts run in f32 only")
        return _onnxruntime(path, threads)
    raise ValueError(f"{path}: not an artifact (.xml for OpenVINO, .onnx for ONNX Runtime)")


def _openvino(path: Path, threads: int, precision: str, cpu_pinning: bool) -> AgeRuntime:
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(path))
    size = int(model.inputs[0].get_partial_shape()[1].get_length())
    # Pinning binds the inference threads to cores chosen inside this process alone: every
    # Spark worker picked the same first core, and two workers' inference shared it
    # (crops 1.5x slower with two workers than with one; bench/results/bench_score_scale.json).
    config = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY",
              "ENABLE_CPU_PINNING": cpu_pinning}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = core.compile_model(model, "CPU", config)
    request = compiled.create_infer_request()

    def run(batch: np.ndarray) -> np.ndarray:
        return request.infer({0: batch})[compiled.outputs[0]]

    properties = {name: compiled.get_property(name) for name in
                  ("INFERENCE_NUM_THREADS", "NUM_STREAMS", "ENABLE_CPU_PINNING")}
    return AgeRuntime(OPENVINO, precision, size, run, properties)


def _onnxruntime(path: Path, threads: int) -> AgeRuntime:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    size = int(session.get_inputs()[0].shape[1])

    def run(batch: np.ndarray) -> np.ndarray:
        return session.run(None, {name: batch})[0]

    return AgeRuntime(ONNXRUNTIME, "f32", size, run)


MANIFEST = "serving.json"  # beside the artifact in a version: what was made and measured


def read_artifact(version_dir: Path | str | None) -> dict | None:
    """A version's artifact: its manifest plus `path` (the file to load); None without one.

    A manifest whose file is missing counts as no artifact (the version scores through
    Keras), so an incomplete copy of a version never breaks scoring. `precision` is the one
    to run (`runnable_precision`).
    """
    if version_dir is None:
        return None
    manifest = Path(version_dir) / MANIFEST
    if not manifest.is_file():
        return None
    import json

    facts = json.loads(manifest.read_text())
    path = Path(version_dir) / facts.get("file", "")
    if not facts.get("file") or not path.is_file():
        return None
    precision = runnable_precision(facts)
    if precision != facts.get("precision", "f32"):
        import logging

        logging.getLogger(__name__).warning(
            "%s: bf16 was chosen without being measured on a bf16 CPU; running f32", manifest)
    return {**facts, "precision": precision, "path": path}


def bf16_capable() -> bool:
    """Whether OpenVINO's CPU plugin really runs bf16 here (not f32 under a bf16 hint)."""
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def runnable_precision(manifest: dict) -> str:
    """The precision a worker runs for `manifest`: bf16 only where bf16 was really measured.

    Manifests made on a CPU without bf16 before `bf16.measured` existed could choose bf16 on
    f32's own figures; such a version runs f32, the precision that was verified.
    """
    if manifest.get("precision") == "bf16" and not manifest.get("bf16", {}).get("measured"):
        return "f32"
    return manifest.get("precision", "f32")


def _quality(ages: np.ndarray, truth: np.ndarray, legal_age: int, challenge_age: int) -> dict:
    minors = truth < legal_age
    return {"mae": float(np.abs(ages - truth).mean()),
            "minors_pred_ge_challenge": float((ages[minors] >= challenge_age).mean())
            if minors.any() else None}


def build_artifact(model, out_dir: Path | str, images: np.ndarray,  # noqa: ANN001
                   truth: np.ndarray, keras_ages: np.ndarray, *, max_diff_years: float = 0.05,
                   bf16_max_mae_increase: float = 0.05, bf16_max_diff_years: float = 1.0,
                   legal_age: int = 18,
                   challenge_age: int = 25, runtime: str = OPENVINO,
                   bf16_cpu: bool | None = None) -> dict:
    """Export `model`, verify it on the validation split, choose its precision; the manifest.

    Args:
        model: the loaded Keras model being published.
        out_dir: where the artifact's files and `serving.json` are written (the version's
            staging folder, or a folder whose files are copied into the version).
        images, truth: the validation split's images (uint8) and true ages.
        keras_ages: the Keras model's flip-TTA estimates of `images` (evaluation's).
        max_diff_years: the fp32 artifact must match Keras within this everywhere, else no
            artifact is kept (`verified` false, files removed: the version scores through
            Keras).
        bf16_max_mae_increase: bf16 is chosen only when its MAE is at most this much worse
            than fp32's, its Challenge-25 rate (true minors estimated `challenge_age` or
            older) is not worse at all, and ...
        bf16_max_diff_years: ... no face's estimate moves further than this from Keras's: a
            flag must not depend on the precision a worker happened to run.
        bf16_cpu: whether this CPU runs bf16 (None: ask OpenVINO, `bf16_capable`). Without
            it bf16 is recorded as not measured and the artifact runs f32.

    Returns:
        The manifest (also written as `serving.json` when verified): runtime, file,
        precision chosen, parity, and MAE / Challenge-25 figures of fp32 and bf16.
    """
    import json
    import time

    out_dir = Path(out_dir)
    started = time.perf_counter()
    path = export_artifact(model, out_dir, runtime)
    export_s = time.perf_counter() - started
    f32 = load_runtime(path, precision="f32").predict(images)
    diff = float(np.abs(f32 - keras_ages).max()) if len(images) else 0.0
    manifest: dict = {
        "runtime": runtime, "file": path.name, "export_seconds": round(export_s, 1),
        "validation_faces": len(images), "max_abs_diff_vs_keras_years": diff,
        "max_diff_allowed_years": max_diff_years, "verified": diff < max_diff_years,
        "f32": _quality(f32, truth, legal_age, challenge_age), "precision": "f32",
    }
    if runtime == OPENVINO and not (bf16_capable() if bf16_cpu is None else bf16_cpu):
        manifest["bf16"] = {"measured": False,
                            "why": "this CPU has no bf16: OpenVINO would run f32 under the hint"}
    elif runtime == OPENVINO:
        bf16 = load_runtime(path, precision="bf16").predict(images)
        manifest["bf16"] = {**_quality(bf16, truth, legal_age, challenge_age), "measured": True,
                            "max_abs_diff_vs_keras_years": float(np.abs(bf16 - keras_ages).max())}
        f32_q, bf16_q = manifest["f32"], manifest["bf16"]
        c25_ok = (bf16_q["minors_pred_ge_challenge"] or 0.0) <= (
            f32_q["minors_pred_ge_challenge"] or 0.0)
        close = bf16_q["max_abs_diff_vs_keras_years"] <= bf16_max_diff_years
        if bf16_q["mae"] - f32_q["mae"] <= bf16_max_mae_increase and c25_ok and close:
            manifest["precision"] = "bf16"
        manifest["bf16_max_mae_increase"] = bf16_max_mae_increase
        manifest["bf16_max_diff_years"] = bf16_max_diff_years
    if not manifest["verified"]:
        for name in (path.name, path.with_suffix(".bin").name):
            (out_dir / name).unlink(missing_ok=True)
        return manifest
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return manifest


def artifact_files(out_dir: Path | str) -> dict[str, Path]:
    """The files `build_artifact` left in `out_dir`: {name in the version: path}."""
    out_dir = Path(out_dir)
    names = [MANIFEST, *FILE_NAMES.values(), "age.bin"]
    return {name: out_dir / name for name in names if (out_dir / name).is_file()}


def produce_serving_artifact(inputs, folder: Path) -> ProducedArtifact:  # noqa: ANN001
    """The publish service's serving-artifact producer (`model.lifecycle.publish`).

    `inputs` is a `ProducerInputs`. Builds and verifies the artifact on the validation split
    with the loaded settings' limits; its manifest becomes `metrics["serving"]` (metrics.json
    and the card's "Serving" section) and its files join the version only when verified.
    """
    import logging

    from model.config import load_settings
    from model.lifecycle.publish import ProducedArtifact

    settings = load_settings()
    manifest = build_artifact(
        inputs.model, folder, inputs.valid_images, inputs.valid_ages, inputs.valid_predictions,
        max_diff_years=settings.serving_max_diff_years,
        bf16_max_mae_increase=settings.serving_bf16_max_mae_increase,
        bf16_max_diff_years=settings.serving_bf16_max_diff_years,
        legal_age=inputs.policy.legal_age, challenge_age=inputs.policy.challenge_age)
    if not manifest["verified"]:
        logging.getLogger(__name__).warning(
            "serving artifact differs from Keras by up to %.3f years on the validation split: "
            "not kept, the version scores through Keras", manifest["max_abs_diff_vs_keras_years"])
        return ProducedArtifact({}, {"serving": manifest})
    return ProducedArtifact(artifact_files(folder), {"serving": manifest})
