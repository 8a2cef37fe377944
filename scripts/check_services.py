"""Can this Airflow component reach the services its configuration names? Run it (Airflow venv)
with the component's environment before `airflow db migrate` and before starting each component:

    .venv-airflow/bin/python scripts/check_services.py

It checks the metadata DB (`AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`) and, under the Celery executor,
the broker (`AIRFLOW__CELERY__BROKER_URL`) and result backend (`AIRFLOW__CELERY__RESULT_BACKEND`),
and the MLflow tracking server when `MLFLOW_TRACKING_URI` is an http(s) URL. Each failure is one
line naming the setting, its value with the password hidden, and the reason; exit status 2 if any
failed, 0 (silent) when all answered.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable

TIMEOUT_S = 5


def _one_line(error: BaseException) -> str:
    """The driver's own message (not the wrapper's), whitespace collapsed to one line."""
    cause = getattr(error, "orig", None) or error
    return " ".join(str(cause).split()) or type(cause).__name__


def hide_password(url: str) -> str:
    """`url` with its password replaced by ***."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url.removeprefix("db+")).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy can parse: hide everything between : and @
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest.rpartition('@')[2]}" if "@" in rest else url


def check_database(url: str) -> None:
    """Connect and run SELECT 1; raises on failure."""
    from sqlalchemy import create_engine, text

    url = url.removeprefix("db+")  # Celery's result-backend form of a SQLAlchemy URL
    connect_args = {"connect_timeout": TIMEOUT_S} if url.startswith("postgresql") else {}
    engine = create_engine(url, connect_args=connect_args)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    finally:
        engine.dispose()


def check_broker(url: str) -> None:
    """Open one connection to the Celery broker; raises on failure."""
    from kombu import Connection

    with Connection(url, connect_timeout=TIMEOUT_S) as connection:
        connection.ensure_connection(max_retries=1, timeout=TIMEOUT_S)


def check_mlflow(url: str) -> None:
    """GET the tracking server's /health; raises on failure."""
    with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=TIMEOUT_S) as page:
        if page.status != 200:
            raise OSError(f"HTTP {page.status}")


def checks() -> list[tuple[str, str, Callable[[str], None]]]:
    """(setting, value, check) for every service this configuration uses."""
    from airflow.configuration import conf

    found = [("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", conf.get("database", "sql_alchemy_conn"),
              check_database)]
    if "CeleryExecutor" in conf.get("core", "executor"):
        found += [("AIRFLOW__CELERY__BROKER_URL", conf.get("celery", "broker_url"), check_broker)]
        backend = conf.get("celery", "result_backend", fallback="")
        if backend.startswith("db+"):
            found += [("AIRFLOW__CELERY__RESULT_BACKEND", backend, check_database)]
    tracking = os.environ.get("MLFLOW_TRACKING_URI", "")
    if tracking.startswith(("http://", "https://")):
        found += [("MLFLOW_TRACKING_URI", tracking, check_mlflow)]
    return found


def main() -> int:
    """Run every check; one line on stderr per failure."""
    failed = 0
    for setting, value, check in checks():
        try:
            check(value)
        except (Exception, urllib.error.URLError) as error:  # any driver's error is the answer
            failed += 1
            sys.stderr.write(f"{setting}: cannot reach {hide_password(value)}: "
                             f"{_one_line(error)}\n")
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
