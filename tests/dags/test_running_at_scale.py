"""The Spark connection samples in docs/running-at-scale.md resolve to the masters it promises."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook

DOC = Path(__file__).resolve().parents[2] / "docs" / "running-at-scale.md"
EXPECTED = [  # (master, deploy mode, YARN queue), in the doc's order
    ("local[*]", None, None),
    ("spark://spark-master:7077", None, None),
    ("yarn", "client", "analytics"),
]
SUBMIT = "/opt/checkout-age/.venv/bin/spark-submit"


def _samples() -> list[str]:
    return re.findall(r"^export AIRFLOW_CONN_SPARK_DEFAULT='(.+)'$", DOC.read_text(), re.M)


def test_the_doc_has_one_sample_per_master():
    samples = [json.loads(sample) for sample in _samples()]
    assert [s["conn_type"] for s in samples] == ["spark"] * 4
    assert samples[3]["host"].startswith("k8s://")


@pytest.mark.parametrize("index", range(len(EXPECTED)))
def test_connection_sample_gives_its_master(monkeypatch, index):
    master, deploy_mode, queue = EXPECTED[index]
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", _samples()[index])
    hook = SparkSubmitHook(conn_id="spark_default", spark_binary=SUBMIT)
    resolved = hook._resolve_connection()
    assert (resolved["master"], resolved["deploy_mode"], resolved["queue"]) == (
        master, deploy_mode, queue)
    command = hook._build_spark_submit_command("jobs/daily/score_photos.py")
    assert command[:3] == [SUBMIT, "--master", master]
    if deploy_mode:
        assert command[command.index("--deploy-mode") + 1] == deploy_mode


def test_kubernetes_master_needs_the_kubernetes_provider(monkeypatch):
    """As the doc says: without apache-airflow-providers-cncf-kubernetes the hook refuses k8s://."""
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", _samples()[3])
    try:
        import airflow.providers.cncf.kubernetes  # noqa: F401
    except ImportError:
        with pytest.raises((RuntimeError, NameError)):
            SparkSubmitHook(conn_id="spark_default", spark_binary=SUBMIT)
        return
    hook = SparkSubmitHook(conn_id="spark_default", spark_binary=SUBMIT)
    resolved = hook._resolve_connection()
    assert (resolved["master"], resolved["deploy_mode"], resolved["namespace"]) == (
        "k8s://https://kubernetes.default.svc:443", "client", "spark")
