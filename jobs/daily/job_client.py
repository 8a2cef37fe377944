"""Send a daily job to `checkout-age job-server` (`jobs/daily/job_server.py`) and wait for it.

Only the standard library: `checkout-age score --server URL` stays a small process while the
server's warm Spark application does the work.
"""

from __future__ import annotations

import http.client
import json
import logging
import sys
from urllib.parse import urlsplit

from model.config import Settings
from model.errors import UserError

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0  # a server that does not accept in this long is not there
HEALTH_TIMEOUT_S = 10.0


class ServerUnavailable(Exception):
    """The job server cannot take the job (down, unreachable, other settings): run it alone."""


def _connection(url: str, timeout: float) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise UserError(f"job server {url!r}: use http://HOST:PORT")
    connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    try:
        connection.connect()
    except OSError as exc:
        raise ServerUnavailable(f"not answering ({exc})") from None
    return connection


def server_health(url: str) -> dict:
    """`GET /health` of the job server at `url`.

    Raises:
        ServerUnavailable: nothing answers there.
    """
    connection = _connection(url, HEALTH_TIMEOUT_S)
    try:
        connection.request("GET", "/health")
        return json.loads(connection.getresponse().read())
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise ServerUnavailable(f"no health answer ({exc})") from None
    finally:
        connection.close()


def run_on_server(url: str, job: str, job_args: list[str], settings: Settings) -> dict:
    """Run `job` ("score" or "reports") with `job_args` in the job server at `url`.

    The job's log is written to our stderr (as spark-submit's is); the result is returned as
    the job's own application would have written it.

    Raises:
        ServerUnavailable: the server is not answering, went away during the job, or runs with
            other settings; the caller runs the job as its own application.
        UserError: the server ran the job and it failed (not worth a second try alone).
    """
    from jobs.daily.job_server import job_settings

    body = json.dumps({"job": job, "argv": job_args, "settings": job_settings(settings)})
    connection = _connection(url, CONNECT_TIMEOUT_S)
    log.info("%s %s: sent to the job server %s", job, " ".join(job_args), url)
    try:
        connection.sock.settimeout(None)  # a day takes as long as it takes
        connection.request("POST", "/jobs", body=body,
                           headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        answer = json.loads(response.read())
    except (OSError, http.client.HTTPException, ValueError) as exc:
        # The server died or restarted under the job: the day's partitions are replaced
        # atomically, so running it again alone is safe (its lock refuses a run still going).
        raise ServerUnavailable(f"went away during the job ({exc})") from None
    finally:
        connection.close()
    if response.status in (409, 503):  # other settings; stopping
        raise ServerUnavailable(answer.get("error", f"HTTP {response.status}"))
    if response.status != 200:
        raise UserError(f"job server {url} refused the job (HTTP {response.status}): "
                        f"{answer.get('error')}")
    sys.stderr.write(answer.get("log") or "")
    result = answer.get("result")
    # A range's result comes back even when some of its days failed (exit status 2).
    if result is None or (answer.get("exit_status") != 0 and not result.get("failed")):
        raise UserError(f"{job} failed in the job server {url}: {answer.get('error')}")
    return result
