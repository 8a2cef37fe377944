"""Fixtures of the daily-jobs tests: one small local Spark session for the whole run."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def spark():
    """A local[1] SparkSession with one shuffle partition (tiny data, fast plans)."""
    from jobs.daily.spark import build_spark

    session = build_spark("checkout-age-tests", "local[1]", shuffle_partitions=1,
                          driver_memory="1g")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def reported_day(faces_dir, trained_registry, tmp_path_factory):
    """A simulated day run through both daily Spark jobs, once per session (`daily_run`)."""
    from daily_run import run_reported_day

    return run_reported_day(faces_dir, trained_registry, tmp_path_factory.mktemp("daily"),
                            tmp_path_factory.mktemp("face-cache"))
