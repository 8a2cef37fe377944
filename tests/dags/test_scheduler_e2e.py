"""The DAGs under Airflow's real scheduler: scheduler, DAG processor and API server (LocalExecutor,
SQLite, loopback), runs triggered through the REST API as the UI's "Trigger DAG w/ config" does.

`checkout_age_daily` with `conf={"date": D}` must process day D end to end; at the same time an
`age_model_retrain` run whose gate refuses must succeed with `promote_candidate` skipped and the
production model unchanged. The two runs go concurrently (parallelism 2) to keep the test short.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import requests
from airflow_site import copy_small_faces, site_env

# About 5 minutes on 2 idle cores; the waits below only bound a hung run (shared machines are slow).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]

PROJECT = Path(__file__).resolve().parents[2]
JOBS_CLI = PROJECT / ".venv" / "bin" / "checkout-age"
AIRFLOW = PROJECT / ".venv-airflow" / "bin" / "airflow"
DAY = "2026-03-14"
FACES = 150


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _listening_addresses(port: int) -> set[str]:
    """Local IPv4/IPv6 addresses with a socket listening on `port` (from /proc/net)."""
    found = set()
    for name in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{name}").read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A = LISTEN
                found.add(address)
    return found


class Airflow:
    """Scheduler, DAG processor and API server of one throw-away Airflow home."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.home, self.env = home, env
        self.port = int(env["AIRFLOW__API__PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.processes: list[subprocess.Popen] = []
        self.session = requests.Session()

    def command(self, *args: str) -> list[str]:
        source = 'source scripts/airflow_env.sh && exec "$@"'
        return ["bash", "-c", source, "_", str(AIRFLOW), *args]

    def start(self) -> None:
        done = subprocess.run(self.command("db", "migrate"), cwd=PROJECT, env=self.env,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
        for part in ("scheduler", "dag-processor", "api-server"):
            log = open(self.home / f"{part}.log", "w")
            self.processes.append(subprocess.Popen(
                self.command(part), cwd=PROJECT, env=self.env, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True))
        self._wait(lambda: self._healthy(), 240, "the API server to answer")
        passwords = self.home / "airflow" / "simple_auth_manager_passwords.json.generated"
        password = json.loads(passwords.read_text())["admin"]
        token = requests.post(f"{self.url}/auth/token", timeout=30,
                              json={"username": "admin", "password": password})
        token.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {token.json()['access_token']}"

    def _healthy(self) -> bool:
        for process in self.processes:
            if process.poll() is not None:
                pytest.fail(f"{process.args[-1]} exited: {self.logs()}")
        try:
            return requests.get(f"{self.url}/api/v2/monitor/health", timeout=5).ok
        except requests.ConnectionError:
            return False

    @staticmethod
    def _wait(check, seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while not check():
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {seconds} s waiting for {what}")
            time.sleep(2)

    def api(self, method: str, path: str, **kwargs) -> dict:
        response = self.session.request(method, f"{self.url}/api/v2{path}", timeout=30, **kwargs)
        assert response.ok, f"{method} {path}: {response.status_code} {response.text[:500]}"
        return response.json()

    def trigger(self, dag_id: str, conf: dict) -> str:
        """Unpause `dag_id` once parsed, trigger a run with `conf`; returns the run id."""
        def parsed() -> bool:
            return self.session.get(f"{self.url}/api/v2/dags/{dag_id}", timeout=30).ok

        self._wait(parsed, 240, f"{dag_id} to be parsed")
        self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        run = self.api("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})
        return run["dag_run_id"]

    def wait_run(self, dag_id: str, run_id: str, seconds: float) -> dict[str, str]:
        """Wait until the run ends; returns {"run": state, task_id: state, ...}."""
        states = {}

        def ended() -> bool:
            run = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
            states["run"] = run["state"]
            return run["state"] in ("success", "failed")

        self._wait(ended, seconds, f"{dag_id} run {run_id}")
        tasks = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        states.update({t["task_id"]: t["state"] for t in tasks["task_instances"]})
        return states

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-2500:]}" for p in self.home.glob("*.log"))

    def stop(self) -> None:
        """SIGTERM to each component and its own children, SIGKILL to what is left after 60 s."""
        family = []
        for process in self.processes:
            try:
                leader = psutil.Process(process.pid)
                family += [leader, *leader.children(recursive=True)]
            except psutil.NoSuchProcess:
                pass
        for member in family:
            try:
                member.send_signal(signal.SIGTERM)
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(family, timeout=60)
        for member in alive:
            try:
                member.kill()
            except psutil.NoSuchProcess:
                pass
        for process in self.processes:
            process.wait(timeout=30)


@pytest.fixture(scope="module")
def airflow(tmp_path_factory, faces_dir):
    """A running Airflow (own home, data root, registry) with a production model v0001."""
    home = tmp_path_factory.mktemp("scheduler")
    faces = copy_small_faces(faces_dir, home / "faces", FACES)
    port = _free_port()
    env = site_env(
        home, faces,
        AIRFLOW__API__PORT=str(port),
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{port}/execution/",
        AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_hex(16),
        AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC="2",
        # Only the runs the test triggers: unpausing must not start the weekly retraining.
        AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE="False",
        AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="30",
    )
    jobs = {**env, "PATH": f"{JOBS_CLI.parent}:{env['PATH']}"}
    for args in (["model", "train", "--faces", str(faces), "--size", "96", "--head-epochs", "1",
                  "--epochs", "0", "--limit", "100"],
                 ["model", "promote", "v0001", "--max-mae", "100"],
                 ["simulate", "--date", DAY, "--stores", "2", "--receipts-per-store", "30",
                  "--root", str(home / "data"), "--faces", str(faces), "--seed", "7"]):
        done = subprocess.run([str(JOBS_CLI), *args], env=jobs, capture_output=True, text=True)
        assert done.returncode == 0, f"{args[:2]}: {done.stderr[-3000:]}"
    site = Airflow(home, env)
    try:
        site.start()
        yield site
    finally:
        site.stop()


def _versions(env: dict) -> list[dict]:
    """`checkout-age model list --json` in the site's environment (the MLflow store)."""
    done = subprocess.run([str(JOBS_CLI), "model", "list", "--json"], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_the_api_server_listens_on_loopback_only(airflow):
    assert _listening_addresses(airflow.port) == {"0100007F"}  # 127.0.0.1, nothing else


def test_rest_triggered_runs_under_the_real_scheduler(airflow):
    daily = airflow.trigger("checkout_age_daily", {"date": DAY})
    retrain = airflow.trigger("age_model_retrain", {
        "image_size": 96, "epochs": 0, "head_epochs": 1, "limit": 60, "max_mae": 1.0})

    states = airflow.wait_run("checkout_age_daily", daily, 1500)
    assert states == {
        "run": "success", "wait_for_landing": "success", "resolve_model": "success",
        "score_photos": "success", "build_reports": "success", "check_quality": "success",
        "render_report": "success", "apply_retention": "success",
    }, airflow.logs()
    data = airflow.home / "data"
    quality = data / "reports" / "run_quality" / f"date={DAY}"
    assert list(quality.glob("*.parquet"))
    html = (data / "html" / f"report-{DAY}.html").read_text()
    assert f"Checkout age report: {DAY}" in html

    states = airflow.wait_run("age_model_retrain", retrain, 600)
    assert states == {
        "run": "success", "validate_faces": "success", "train_candidate": "success",
        "evaluate_candidate": "success", "promote_candidate": "skipped",
    }, airflow.logs()
    versions = _versions(airflow.env)
    assert [v["version"] for v in versions if v["production"]] == ["v0001"]
    # The refused candidate stays registered.
    assert [v["version"] for v in versions] == ["v0001", "v0002"]


def test_make_airflow_binds_loopback_unless_opened():
    def host(**env: str) -> str:
        clean = {k: v for k, v in os.environ.items()
                 if k not in ("AIRFLOW__API__HOST", "AIRFLOW_HOST")}
        show = 'source scripts/airflow_env.sh; echo "$AIRFLOW__API__HOST"'
        done = subprocess.run(["bash", "-c", show],
                              cwd=PROJECT, env={**clean, **env}, capture_output=True, text=True)
        return done.stdout.strip()

    assert host() == "127.0.0.1"
    assert host(AIRFLOW_HOST="0.0.0.0") == "0.0.0.0"
    assert host(AIRFLOW__API__HOST="10.1.2.3", AIRFLOW_HOST="0.0.0.0") == "10.1.2.3"
