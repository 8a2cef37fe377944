"""A throw-away site for DAG runs: a small real face set (copied, never linked), the environment
that points Airflow and the jobs at a temp home, and `Airflow`, its components as real processes
(each started through scripts/airflow_env.sh, as `make airflow` does) with a REST client."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
import requests
from local_services import free_port

PROJECT = Path(__file__).resolve().parents[2]
AIRFLOW = PROJECT / ".venv-airflow" / "bin" / "airflow"
JOBS_CLI = PROJECT / ".venv" / "bin" / "checkout-age"
# The embedded default's components; `airflow standalone` runs the same three plus a triggerer.
LOCAL_PARTS = {"scheduler": ["scheduler"], "dag-processor": ["dag-processor"],
               "api-server": ["api-server"]}


def copy_small_faces(faces_dir: Path, target: Path, count: int) -> Path:
    """Copy `count` faces of `faces_dir`, evenly spread over the age-sorted labels, to `target`.

    Writes `target/labels.csv` and `target/final_files/`; returns `target`.
    """
    (target / "final_files").mkdir(parents=True)
    with open(faces_dir / "labels.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["real_age"].isdigit()]
    rows.sort(key=lambda r: (int(r["real_age"]), r["file_name"]))
    picked = [rows[i * (len(rows) - 1) // (count - 1)] for i in range(count)]
    for row in picked:
        shutil.copy(faces_dir / "final_files" / row["file_name"], target / "final_files")
    with open(target / "labels.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(picked[0]))
        writer.writeheader()
        writer.writerows(picked)
    return target


def site_env(home: Path, faces: Path, **extra: str) -> dict[str, str]:
    """This process's environment with Airflow, the data root, registry and caches under `home`.

    Variables scripts/airflow_env.sh derives itself (DAG folder, data-root Variable, API host)
    are removed so it derives them, as `make airflow` and the demo do.
    """
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home / "airflow"),
        "CHECKOUT_AGE_DATA_ROOT": str(home / "data"),
        "MODEL_REGISTRY": str(home / "registry"),
        "CHECKOUT_AGE_CACHE_DIR": str(home / "cache"),
        "FACES_DIR": str(faces),
        "AIRFLOW_VAR_CHECKOUT_AGE_FACES_DIR": str(faces),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        **extra,
    }
    for name in ("AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW_VAR_CHECKOUT_AGE_DATA_ROOT",
                 "AIRFLOW__API__HOST", "AIRFLOW_HOST"):
        env.pop(name, None)
    return env


def scheduler_env(home: Path, faces: Path, **extra: str) -> dict[str, str]:
    """`site_env` for a real scheduler: API server on a free loopback port with a generated JWT
    secret, fast heartbeats, and only the runs a test triggers (unpausing must not start the
    weekly retraining)."""
    import secrets

    port = extra.pop("AIRFLOW__API__PORT", None) or str(free_port())
    return site_env(home, faces, **{
        "AIRFLOW__API__PORT": port,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(16),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        **extra,
    })


def prepare_site(home: Path, faces: Path, env: dict[str, str], day: str) -> None:
    """A production model v0001 (96 px, one head epoch on 100 faces: seconds, not accuracy)
    and a simulated day `day` (2 stores, 30 receipts each, seed 7) under `home`."""
    jobs = {**env, "PATH": f"{JOBS_CLI.parent}:{env['PATH']}"}
    for args in (["model", "train", "--faces", str(faces), "--size", "96", "--head-epochs", "1",
                  "--epochs", "0", "--limit", "100"],
                 ["model", "promote", "v0001", "--max-mae", "100"],
                 ["simulate", "--date", day, "--stores", "2", "--receipts-per-store", "30",
                  "--root", str(home / "data"), "--faces", str(faces), "--seed", "7"]):
        done = subprocess.run([str(JOBS_CLI), *args], env=jobs, capture_output=True, text=True)
        assert done.returncode == 0, f"{args[:2]}: {done.stderr[-3000:]}"


def in_airflow_env(*command: str) -> list[str]:
    """`command` run after `source scripts/airflow_env.sh` (values already set win), from the
    project folder."""
    return ["bash", "-c", 'source scripts/airflow_env.sh && exec "$@"', "_", *command]


def airflow_command(*args: str) -> list[str]:
    """`airflow ARGS` in the environment of scripts/airflow_env.sh."""
    return in_airflow_env(str(AIRFLOW), *args)


def _family(pid: int) -> list[psutil.Process]:
    try:
        leader = psutil.Process(pid)
        return [leader, *leader.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _signal_all(members: list[psutil.Process], sig: int) -> None:
    for member in members:
        try:
            member.send_signal(sig)
        except psutil.NoSuchProcess:
            pass


class Airflow:
    """The components of one throw-away Airflow home as processes, and a logged-in REST client.

    `parts` maps a name to the `airflow` arguments and extra environment of that process.
    """

    def __init__(self, home: Path, env: dict[str, str],
                 parts: dict[str, list[str] | tuple[list[str], dict[str, str]]] | None = None,
                 ) -> None:
        self.home, self.env = home, env
        self.parts = {name: spec if isinstance(spec, tuple) else (spec, {})
                      for name, spec in (parts or LOCAL_PARTS).items()}
        self.port = int(env["AIRFLOW__API__PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.processes: dict[str, subprocess.Popen] = {}
        # Parts restarted when they exit, as systemd's Restart=always or a pod's restart policy
        # does in production (docs/running-at-scale.md); each restart is recorded.
        self.supervised: set[str] = set()
        self.restarts: list[tuple[str, int]] = []
        self.session = requests.Session()

    def run(self, *args: str, **extra_env: str) -> subprocess.CompletedProcess:
        """One `airflow` command to its end (stdout and stderr captured)."""
        return subprocess.run(airflow_command(*args), cwd=PROJECT, env={**self.env, **extra_env},
                              capture_output=True, text=True, timeout=600)

    def start(self) -> None:
        """`airflow db migrate`, every part, then wait for the API server and log in."""
        done = self.run("db", "migrate")
        assert done.returncode == 0, done.stderr[-3000:]
        for name in self.parts:
            self.launch(name)
        self.wait(self._healthy, 300, "the API server to answer")
        passwords = self.home / "airflow" / "simple_auth_manager_passwords.json.generated"
        password = json.loads(passwords.read_text())["admin"]
        token = requests.post(f"{self.url}/auth/token", timeout=30,
                              json={"username": "admin", "password": password})
        token.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {token.json()['access_token']}"

    def log_path(self, name: str) -> Path:
        """Part `name`'s log (stdout and stderr of every start of it, appended)."""
        return self.home / f"{name}.log"

    def launch(self, name: str) -> subprocess.Popen:
        """Start part `name` (its log, appended: `log_path`)."""
        args, extra = self.parts[name]
        log = open(self.log_path(name), "a")
        self.processes[name] = subprocess.Popen(
            airflow_command(*args), cwd=PROJECT, env={**self.env, **extra}, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)
        return self.processes[name]

    def supervise(self, *names: str) -> None:
        """Restart parts `names` whenever they exit (checked at each poll of `wait`)."""
        self.supervised.update(names)

    def _restart_exited(self) -> None:
        for name in sorted(self.supervised):
            code = self.processes[name].poll()
            if code is not None:
                self.restarts.append((name, code))
                with open(self.log_path(name), "a") as log:
                    log.write(f"--- supervisor: {name} exited with {code}; restarted\n")
                self.launch(name)

    def family(self, name: str) -> list[psutil.Process]:
        """Part `name`'s process and all its descendants (tasks, Spark drivers)."""
        return _family(self.processes[name].pid)

    def kill(self, name: str) -> list[psutil.Process]:
        """`kill -9` part `name` and every process below it, as a lost machine; returns them.

        A lost machine is not restarted: the part leaves supervision.
        """
        self.supervised.discard(name)
        members = self.family(name)
        _signal_all(members, signal.SIGKILL)
        psutil.wait_procs(members, timeout=30)
        self.processes[name].wait(timeout=30)
        return members

    def _healthy(self) -> bool:
        for name, process in self.processes.items():
            if process.poll() is not None:
                pytest.fail(f"{name} exited: {self.logs()}")
        try:
            return requests.get(f"{self.url}/api/v2/monitor/health", timeout=5).ok
        except requests.ConnectionError:
            return False

    def wait(self, check: Callable[[], bool], seconds: float, what: str) -> None:
        """Poll `check` every 2 s; fail the test after `seconds` with every part's log tail.

        Each poll first restarts the supervised parts that exited. The tails are what tells a
        stuck scheduler from a slow task when this fails in CI.
        """
        deadline = time.monotonic() + seconds
        while True:
            self._restart_exited()
            if check():
                return
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {seconds} s waiting for {what}\n{self.logs()}")
            time.sleep(2)

    def api(self, method: str, path: str, **kwargs) -> dict:
        """One REST call to /api/v2; the test fails on an error status."""
        response = self.session.request(method, f"{self.url}/api/v2{path}", timeout=30, **kwargs)
        assert response.ok, f"{method} {path}: {response.status_code} {response.text[:500]}"
        return response.json()

    def trigger(self, dag_id: str, conf: dict) -> str:
        """Unpause `dag_id` once parsed, trigger a run with `conf`; returns the run id."""
        def parsed() -> bool:
            return self.session.get(f"{self.url}/api/v2/dags/{dag_id}", timeout=30).ok

        self.wait(parsed, 300, f"{dag_id} to be parsed")
        self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        run = self.api("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})
        return run["dag_run_id"]

    def task_state(self, dag_id: str, run_id: str, task_id: str) -> str | None:
        """The task instance's state now (None before it is scheduled)."""
        return self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")["state"]

    def tries(self, dag_id: str, run_id: str, task_id: str) -> list[dict]:
        """Every try of one task instance, oldest first (state, hostname, pid, ...)."""
        tries = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/tries")
        return sorted(tries["task_instances"], key=lambda t: t["try_number"])

    def wait_run(self, dag_id: str, run_id: str, seconds: float) -> dict[str, str]:
        """Wait until the run ends; returns {"run": state, task_id: state, ...}."""
        states = {}

        def ended() -> bool:
            run = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
            states["run"] = run["state"]
            return run["state"] in ("success", "failed")

        self.wait(ended, seconds, f"{dag_id} run {run_id}")
        tasks = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        states.update({t["task_id"]: t["state"] for t in tasks["task_instances"]})
        return states

    def logs(self) -> str:
        """The end of every part's log."""
        return "\n".join(f"--- {p.name}\n{p.read_text()[-2500:]}" for p in self.home.glob("*.log"))

    def stop_part(self, name: str) -> None:
        """SIGTERM to part `name` and its own children, SIGKILL to what is left after 60 s.

        The part leaves supervision (`supervise` it again after `launch`).
        """
        self.supervised.discard(name)
        members = self.family(name)
        _signal_all(members, signal.SIGTERM)
        _, alive = psutil.wait_procs(members, timeout=60)
        _signal_all(alive, signal.SIGKILL)
        self.processes[name].wait(timeout=30)

    def stop(self) -> None:
        """Stop every part (SIGTERM together, then SIGKILL after 60 s), by PID."""
        self.supervised.clear()
        members = [m for name in self.processes for m in self.family(name)]
        _signal_all(members, signal.SIGTERM)
        _, alive = psutil.wait_procs(members, timeout=60)
        _signal_all(alive, signal.SIGKILL)
        for process in self.processes.values():
            process.wait(timeout=30)
