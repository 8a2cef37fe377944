"""Airflow test environment: a throw-away AIRFLOW_HOME, the project's DAGs, no example DAGs.

Set before any test module imports airflow (Airflow reads its configuration on import).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DAGS_FOLDER = PROJECT_ROOT / "dags"

os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="checkout-age-airflow-")
atexit.register(shutil.rmtree, os.environ["AIRFLOW_HOME"], ignore_errors=True)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS_FOLDER)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
