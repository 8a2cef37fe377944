"""Benchmark: `model train` with the heap kept (`model/training/heap.py`) against TensorFlow's patch.

Runs the real command, `checkout-age model train --profile P --json` on FACES_DIR (whole
epochs, real faces; a scratch registry), alternating `CHECKOUT_AGE_KEEP_HEAP=1` (now) and `=0` (glibc's
thresholds as TensorFlow's generator dataset leaves them: freed activations handed back to the
kernel every step). Per run: wall, the command's user and system CPU seconds and minor page
faults (rusage of the child), the training phases and the epochs' images per second from its
log, and the test MAE (the same seed: the two ways must train the same model).

Results: bench/results/bench_train_heap.json, with the load average.

    .venv/bin/python bench/bench_train_heap.py --profile quick --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from bench.run_record import progress, publish, run_record  # noqa: E402

RESULTS = PROJECT / "bench" / "results" / "bench_train_heap.json"
CLI = PROJECT / ".venv" / "bin" / "checkout-age"
_EPOCH = re.compile(r"epoch (\d+)/\d+ \((\w+)\):.* ([\d.]+) img/s")


def train(profile: str, keep: bool, home: Path) -> dict:
    """One `model train` run; its costs and figures."""
    env = {**os.environ, "CHECKOUT_AGE_KEEP_HEAP": "1" if keep else "0",
           "CHECKOUT_AGE_HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "0"}  # its INFO line shows the patch
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    done = subprocess.run([str(CLI), "model", "train", "--profile", profile, "--json"],
                          env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"model train failed:\n{done.stderr[-3000:]}")
    if "Memory patch applied" not in done.stderr:
        raise RuntimeError("TensorFlow's trim patch was not seen: nothing to compare")
    result = json.loads(done.stdout[done.stdout.index("{"):])  # indented JSON
    epochs = [(int(n), phase, float(rate)) for n, phase, rate in _EPOCH.findall(done.stderr)]
    full = [rate for n, phase, rate in epochs if phase == "full"]
    return {"seconds": round(seconds, 1),
            "user_s": round(after.ru_utime - before.ru_utime, 1),
            "system_s": round(after.ru_stime - before.ru_stime, 1),
            "minor_faults": after.ru_minflt - before.ru_minflt,
            "full_epochs_images_per_s_median": statistics.median(full) if full else None,
            "epochs": len(epochs),
            "test_mae": round(result["metrics"]["test"]["mae"], 3),
            "load_avg_after": round(os.getloadavg()[0], 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick", choices=("quick", "cpu"))
    parser.add_argument("--repeats", type=int, default=2, help="runs of each way")
    parser.add_argument("--quick", action="store_true", help="no results file")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    if not os.environ.get("FACES_DIR"):
        raise SystemExit("set FACES_DIR to the labelled face set")
    started, load_before = time.time(), os.getloadavg()
    runs: dict[str, list[dict]] = {"keep_heap": [], "tensorflow_patch": []}
    with tempfile.TemporaryDirectory(prefix="bench-train-heap-") as tmp:
        # The decoded-image cache is this checkout's (var/cache): the first run fills what is
        # missing there, which counts against the first way in the order (keep_heap).
        home = Path(tmp)
        (home / "cache").symlink_to(PROJECT / "var" / "cache")
        order = [True, False, False, True] * args.repeats
        for keep in order[: 2 * args.repeats]:
            label = "keep_heap" if keep else "tensorflow_patch"
            progress(f"model train --profile {args.profile}: {label}")
            runs[label].append(train(args.profile, keep, home))
    medians = {label: {key: statistics.median(run[key] for run in rs)
                       for key in ("seconds", "user_s", "system_s", "minor_faults",
                                   "full_epochs_images_per_s_median")}
               for label, rs in runs.items()}
    result = {"command": f"checkout-age model train --profile {args.profile} (a scratch registry)",
              "runs": runs, "medians": medians,
              "speed_up": round(medians["tensorflow_patch"]["seconds"]
                                / medians["keep_heap"]["seconds"], 2),
              "run": run_record(started, load_before)}
    publish(result, args.out, keep=not args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
