"""Benchmark the dataset layer on the real face set: validation and the decoded-image cache.

Usage: .venv/bin/python bench/bench_dataset.py [--faces DIR] [--size 160] [--repeats 3]

- validate, cold: a fresh result cache each time (every file read, hashed and decoded).
- validate, warm: the per-file result cache filled (only labels, paths and stats).
- image cache build: every usable image decoded at --size into a fresh cache.
- image cache load: memory-mapping the built cache.
The OS page cache is warm after the first pass, so "cold" means "no result cache", not
"no disk reads". Results (medians) go to bench/results/dataset.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from model.config import load_settings
from model.data.dataset import validate_dataset
from model.data.image_cache import load_images

RESULTS = Path(__file__).resolve().parent / "results" / "dataset.json"


def _timed(fn) -> tuple[float, object]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path, default=load_settings().faces_dir)
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.faces is None:
        parser.error("--faces DIR or FACES_DIR is required")

    load_before = os.getloadavg()[0]
    cold, warm, build, load = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-dataset-") as scratch:
        for run in range(args.repeats):
            cache = Path(scratch) / f"checks-{run}"
            seconds, report = _timed(lambda c=cache: validate_dataset(args.faces, cache_dir=c))
            cold.append(seconds)
            warm.append(_timed(lambda c=cache: validate_dataset(args.faces, cache_dir=c))[0])
            print(f"validate run {run + 1}: cold {cold[-1]:.2f} s, warm {warm[-1]:.2f} s")
        summary = report.summary()
        for run in range(args.repeats):
            images_dir = Path(scratch) / f"images-{run}"
            seconds, _ = _timed(
                lambda d=images_dir: load_images(report.usable, args.size, d, report.fingerprint)
            )
            build.append(seconds)
            seconds, images = _timed(
                lambda d=images_dir: load_images(report.usable, args.size, d, report.fingerprint)
            )
            load.append(seconds)
            print(f"image cache run {run + 1}: build {build[-1]:.2f} s, load {load[-1]:.3f} s")
            nbytes = images.nbytes
            del images

    usable = summary["usable"]
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "faces_dir": str(args.faces),
        "rows": summary["rows"],
        "usable": usable,
        "rejected": {k: v for k, v in summary["rejected"].items() if v},
        "duplicate_groups": summary["duplicate_groups"],
        "conflicting_duplicate_groups": summary["conflicting_duplicate_groups"],
        "repeats": args.repeats,
        # The 2 cores are shared: a load average above 2 means other work competed.
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "validate_cold_s": round(statistics.median(cold), 2),
        "validate_cold_files_per_s": round(summary["rows"] / statistics.median(cold)),
        "validate_warm_s": round(statistics.median(warm), 2),
        "image_size": args.size,
        "image_cache_build_s": round(statistics.median(build), 2),
        "image_cache_build_images_per_s": round(usable / statistics.median(build)),
        "image_cache_load_s": round(statistics.median(load), 3),
        "image_cache_bytes": int(nbytes),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
