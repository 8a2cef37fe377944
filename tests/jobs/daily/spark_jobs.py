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
