"""A real `mlflow server` on 127.0.0.1 for tests: its own backend store, artifact folder and port.

`running_server(backend_uri, artifacts)` starts the same command `make mlflow` and a shared
server run (docs/running-at-scale.md), waits for `/health`, yields the tracking URI, and stops
the server's whole process group afterwards. The backend may be SQLite or PostgreSQL.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_command(backend_uri: str, artifacts: Path, port: int) -> list[str]:
    """The `mlflow server` command line for a shared tracking server (one worker)."""
    return [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1",
            "--port", str(port), "--workers", "1", "--backend-store-uri", backend_uri,
            "--artifacts-destination", str(artifacts)]


@contextlib.contextmanager
def running_server(backend_uri: str, artifacts: Path, log: Path,
                   timeout_s: float = 240.0) -> Iterator[str]:
    """Start `mlflow server`, yield its URL once healthy, stop it (its process group) after."""
    port = free_port()
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    with open(log, "w") as out:
        server = subprocess.Popen(server_command(backend_uri, artifacts, port), stdout=out,
                                  stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"mlflow server exited {server.returncode}: "
                                   f"{log.read_text()[-2000:]}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{url}/health", timeout=5) as answer:
                    if answer.status == 200:
                        break
            if time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server not healthy after {timeout_s:.0f} s: "
                                   f"{log.read_text()[-2000:]}")
            time.sleep(1)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
