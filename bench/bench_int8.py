"""int8 age model (NNCF post-training quantisation) against the fp32 artifact: speed and ages.

Usage (NNCF is not a project dependency: it is measured here, not shipped):
    .venv-tools/bin/uv pip install --python .venv/bin/python --target /tmp/nncf-t --no-deps \
        nncf==3.4.0 networkx==3.6.1 ninja==1.13.2 pydot==4.0.1 safetensors==0.8.0 tabulate==0.10.0
    PYTHONPATH=/tmp/nncf-t .venv/bin/python bench/bench_int8.py --registry var/exp --model v0001

The version's fp32 OpenVINO artifact is quantised with `nncf.quantize` (300 training faces
with their mirror images as the calibration set, the way flip TTA feeds the network) in the
variants below, and every variant scores the whole validation and test splits (as the score
job decodes crops, flip TTA, batch 8, one thread). Per variant: MAE, Challenge-25 figures,
how far single faces move from fp32 (max, 99th percentile), how many faces cross the
challenge age, and faces/s and CPU s per face on 512 test faces (alternating, median of 3).
The artifact rule it is judged by (docs/serving.md): a reduced precision only if the MAE is at
most 0.05 years worse, Challenge 25 not worse and no face moves more than 1 year.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.run_record import progress, publish, run_record  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "bench_int8.json"
VARIANTS = ("performance", "mixed", "head_f32", "bias_correction")


def _faces(usable, split: str, size: int, count: int | None = None):  # noqa: ANN001, ANN202
    from model.serving.images import decode_face

    rows = usable[usable["split"] == split].reset_index(drop=True)
    if count:
        rows = rows.sample(count, random_state=0).reset_index(drop=True)
    images = np.stack([decode_face(Path(p).read_bytes(), size) for p in rows["path"]])
    return images, rows["real_age"].to_numpy(float)


def _quantise(model, calibration: np.ndarray, variant: str):  # noqa: ANN001, ANN202
    import nncf

    def transform(image: np.ndarray) -> np.ndarray:
        batch = image[None].astype(np.float32)
        return np.concatenate([batch, batch[:, :, ::-1, :]])

    extra = {}
    if variant == "head_f32":  # the regression head and the last convolution left in fp32
        last_conv = [op.get_friendly_name() for op in model.get_ordered_ops()
                     if op.get_type_name() == "Convolution"][-1]
        extra["ignored_scope"] = nncf.IgnoredScope(types=["MatMul"], names=[last_conv])
    preset = (nncf.QuantizationPreset.MIXED if variant == "mixed"
              else nncf.QuantizationPreset.PERFORMANCE)
    return nncf.quantize(model, nncf.Dataset(list(calibration), transform), preset=preset,
                         subset_size=len(calibration),
                         fast_bias_correction=variant != "bias_correction", **extra)


def _figures(ages: np.ndarray, truth: np.ndarray, reference: np.ndarray) -> dict:
    minors, young = truth < 18, (truth >= 18) & (truth < 25)
    moved = np.abs(ages - reference)
    return {"mae": float(np.abs(ages - truth).mean()),
            "minors_pred_ge_25": float((ages[minors] >= 25).mean()),
            "age_18_24_pred_lt_18": float((ages[young] < 18).mean()),
            "max_abs_diff_vs_f32_years": float(moved.max()),
            "p99_abs_diff_vs_f32_years": float(np.percentile(moved, 99)),
            "faces_crossing_25_vs_f32": int(((ages < 25) != (reference < 25)).sum())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", help="model registry (default: the settings' one)")
    parser.add_argument("--model", default="production", help="version or stage")
    parser.add_argument("--calibration-faces", type=int, default=300)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    started, load_before = time.time(), os.getloadavg()

    import openvino as ov

    from model.config import load_settings
    from model.data.dataset import validate_dataset
    from model.data.split import assign_splits
    from model.lifecycle.registry import ModelRegistry
    from model.serving.artifact import load_runtime, read_artifact

    settings = load_settings()
    version = ModelRegistry(args.registry or settings.registry_store,
                            cache_dir=settings.cache_dir / "models").resolve(args.model)
    artifact = read_artifact(version.path)
    if artifact is None:
        raise SystemExit(f"{version.version} has no serving artifact")
    faces_dir = Path(settings.faces_dir or Path(__file__).resolve().parents[2] / "shared" / "faces")
    usable = assign_splits(validate_dataset(faces_dir, cache_dir=settings.cache_dir).usable)
    size = version.image_size
    calibration, _ = _faces(usable, "train", size, args.calibration_faces)
    splits = {name: _faces(usable, name, size) for name in ("valid", "test")}
    progress(f"{len(calibration)} calibration faces, {len(splits['valid'][0])} valid, "
             f"{len(splits['test'][0])} test")

    fp32_model = ov.Core().read_model(str(artifact["path"]))
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench_int8_{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    runtimes = {"f32": load_runtime(artifact["path"], threads=1)}
    quantise_s = {}
    for variant in args.variants:
        begun = time.perf_counter()
        quantised = _quantise(fp32_model, calibration, variant)
        quantise_s[variant] = round(time.perf_counter() - begun, 1)
        path = tmp / f"age_{variant}.xml"
        ov.save_model(quantised, str(path), compress_to_fp16=False)
        runtimes[f"int8_{variant}"] = load_runtime(path, threads=1)
        progress(f"{variant}: quantised in {quantise_s[variant]} s")

    results: dict = {}
    reference = {name: runtimes["f32"].predict(images) for name, (images, _) in splits.items()}
    for name, runtime in runtimes.items():
        results[name] = {split: _figures(runtime.predict(images), truth, reference[split])
                         for split, (images, truth) in splits.items()}
        if name in quantise_s:
            results[name]["quantise_s"] = quantise_s[name.removeprefix("int8_")]
    block = splits["test"][0][:512]
    timings: dict[str, list[tuple[float, float]]] = {name: [] for name in runtimes}
    for _ in range(3):  # alternating: drift of the machine hits every variant alike
        for name, runtime in runtimes.items():
            cpu, wall = time.process_time(), time.perf_counter()
            runtime.predict(block)
            timings[name].append((len(block) / (time.perf_counter() - wall),
                                  (time.process_time() - cpu) / len(block)))
    for name, runs in timings.items():
        results[name]["faces_per_s"] = statistics.median(r[0] for r in runs)
        results[name]["cpu_s_per_face"] = statistics.median(r[1] for r in runs)
        results[name]["speed_up_vs_f32"] = (results[name]["faces_per_s"]
                                            / statistics.median(r[0] for r in timings["f32"]))
    core = ov.Core()
    result = {"model": version.version, "image_size": size, "calibration_faces":
              len(calibration), "cpu_capabilities": core.get_property(
                  "CPU", "OPTIMIZATION_CAPABILITIES"),
              "cpu": core.get_property("CPU", "FULL_DEVICE_NAME"), "variants": results,
              "rule": {"mae_increase_at_most": 0.05, "challenge_25_not_worse": True,
                       "max_face_move_years": 1.0}}
    result["run"] = run_record(started, load_before)
    publish(result, args.out, keep=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
