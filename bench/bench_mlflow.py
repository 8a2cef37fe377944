"""Benchmark: what MLflow costs the commands that use it (embedded SQLite store).

Each figure is the median of `--repeats` fresh interpreters: `import mlflow`; a new embedded
store's first use built from MLflow's migrations vs copied from the empty-schema template;
`checkout-age model show production --version-only` (what the daily DAG's `resolve_model`
runs) on a store with one version; register + promote of a tiny model in process.

    .venv/bin/python bench/bench_mlflow.py   # -> bench/results/bench_mlflow.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_model import write_results  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "bench_mlflow.json"
PYTHON = sys.executable
CLI = str(Path(sys.executable).parent / "checkout-age")


def _seconds(code: str, *args: str, env: dict | None = None) -> float:
    """Wall seconds of `code` timed inside a fresh interpreter (its start-up excluded)."""
    timed = f"import time; _t = time.perf_counter()\n{code}\nprint(time.perf_counter() - _t)"
    done = subprocess.run([PYTHON, "-c", timed, *args], capture_output=True, text=True,
                          check=True, env={**os.environ, **(env or {})})
    return float(done.stdout.strip().splitlines()[-1])


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 2)


def main() -> None:
    """Run each measurement `--repeats` times and write the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    started, load = time.perf_counter(), os.getloadavg()
    env = {"MLFLOW_DISABLE_TELEMETRY": "true"}
    work = Path(tempfile.mkdtemp(prefix="bench-mlflow-"))
    imports = [_seconds("import mlflow", env=env) for _ in range(args.repeats)]
    fresh = [_seconds("import sys, mlflow\nmlflow.MlflowClient(tracking_uri=sys.argv[1])"
                      ".search_experiments(max_results=1)", f"sqlite:///{work}/fresh-{i}.db",
                      env=env) for i in range(args.repeats)]
    copied = [_seconds("import sys\nfrom model.lifecycle.store import MlflowStore\n"
                       "MlflowStore(sys.argv[1]).client", str(work / f"copied-{i}"), env=env)
              for i in range(args.repeats)]
    publish = ("import sys, keras\nfrom model.lifecycle.registry import ModelRegistry\n"
               "i = keras.Input((12, 12, 3))\n"
               "m = keras.Model(i, keras.layers.Dense(1)(keras.layers.Flatten()(i)))\n"
               "m.save(sys.argv[2])\nr = ModelRegistry(sys.argv[1])\nr.client\n"
               "t = time.perf_counter()\n"
               "v = r.register(sys.argv[2], {'test': {'mae': 5.0}}, {'size': 12}, 'f' * 64, '#', [])\n"
               "r.promote(v)\nr.resolve('production')\n"
               "print(time.perf_counter() - t)")
    registered = []
    for i in range(args.repeats):
        done = subprocess.run([PYTHON, "-c", "import time\n" + publish, str(work / f"pub-{i}"),
                               str(work / f"m{i}.keras")], capture_output=True, text=True,
                              check=True, env={**os.environ, **env})
        registered.append(float(done.stdout.strip().splitlines()[-1]))
    shown = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        subprocess.run([CLI, "model", "show", "production", "--version-only"], check=True,
                       capture_output=True, env={**os.environ, **env,
                                                 "MODEL_REGISTRY": str(work / "pub-0")})
        shown.append(time.perf_counter() - t)
    results = {
        "import_mlflow_s": _median(imports),
        "new_store_from_migrations_s": _median(fresh),
        "new_store_from_template_s": _median(copied),
        "register_promote_resolve_tiny_model_s": _median(registered),
        "cli_show_production_version_only_s": _median(shown),
        "repeats": args.repeats,
    }
    write_results(results, args.out, started, load)


if __name__ == "__main__":
    main()
