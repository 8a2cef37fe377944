"""`make setup` compiles both venvs to bytecode (`compileall`, the `.bytecode` stamps).

Without it, wherever nothing may write the bytecode cache (PYTHONDONTWRITEBYTECODE, as on these
machines and in most container images; a read-only venv), every process compiles the modules it
imports from source: about 1.6 s of CPU for each Spark Python worker's pandas and pyarrow, 2.3 s
for every Airflow command (bench/results/bench_score_scale-bytecode.json, docs/serving.md).
"""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sysconfig
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
AIRFLOW_PYTHON = PROJECT / ".venv-airflow" / "bin" / "python"

# What a score job's processes import (driver, Python workers) and what the CLI imports.
HEAVY_MODULES = ("numpy", "pandas", "pyarrow", "pyspark.sql", "openvino", "mlflow")


def _uncompiled(site_packages: Path) -> list[Path]:
    """The venv's modules with no bytecode beside them (`__pycache__/<name>.<tag>.pyc`)."""
    return [source for source in site_packages.rglob("*.py")
            if not Path(importlib.util.cache_from_source(str(source))).is_file()]


@pytest.mark.parametrize("name", HEAVY_MODULES)
def test_the_jobs_venv_loads_compiled_modules(name: str) -> None:
    module = importlib.import_module(name)
    cached = Path(importlib.util.cache_from_source(module.__file__))
    assert cached.is_file(), f"{name}: no bytecode at {cached}; run make setup"


def test_every_module_of_the_jobs_venv_is_compiled() -> None:
    site_packages = Path(sysconfig.get_paths()["purelib"])
    missing = _uncompiled(site_packages)
    # A package may ship a file that is not valid Python 3 (test data); none does today.
    assert len(missing) <= 10, f"{len(missing)} modules without bytecode, e.g. {missing[:5]}"


@pytest.mark.skipif(not AIRFLOW_PYTHON.exists(), reason="no Airflow venv (make setup)")
def test_every_module_of_the_airflow_venv_is_compiled() -> None:
    site_packages = subprocess.run(
        [str(AIRFLOW_PYTHON), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True).stdout.strip()
    missing = _uncompiled(Path(site_packages))
    assert len(missing) <= 10, f"{len(missing)} modules without bytecode, e.g. {missing[:5]}"
