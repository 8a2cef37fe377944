"""Throw-away servers owned by a test: PostgreSQL, Redis and a Spark standalone cluster, each on a
free loopback port with generated passwords, stopped by its own PIDs (never by name).

Shared by the jobs venv's tests (`tests/jobs`) and the Airflow venv's (`tests/dags`): standard
library and psutil only; the PostgreSQL roles are created with `psql`.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` different TCP ports free on 127.0.0.1 right now (all held open while choosing)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def listening_addresses(port: int) -> set[str]:
    """Local IPv4/IPv6 addresses (hex, as /proc/net shows them) listening on `port`."""
    found = set()
    for name in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{name}").read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A = LISTEN
                found.add(address)
    return found


# 127.0.0.1 as /proc/net/tcp writes it, the same as an IPv4-mapped IPv6 address (a JVM's
# listening socket), and ::1.
LOOPBACK = {"0100007F", "0000000000000000FFFF00000100007F", "00000000000000000000000001000000"}


def listens_on_loopback_only(port: int) -> bool:
    """Something listens on `port`, and only on loopback addresses."""
    found = listening_addresses(port)
    return bool(found) and found <= LOOPBACK


def listening_ports(pids: list[int]) -> set[int]:
    """TCP ports on which any of `pids` listens (from /proc: each socket's inode)."""
    inodes = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:  # ended meanwhile
            continue
    ports = set()
    for name in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{name}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:
                ports.add(int(fields[1].split(":")[1], 16))
    return ports


def wait_for(check: Callable[[], bool], seconds: float, what: str, step: float = 1.0) -> None:
    """Poll `check` until it is true; TimeoutError naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {seconds:.0f} s waiting for {what}")
        time.sleep(step)


def stop_process(process: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM to the process's own PID, SIGKILL if it lingers past `timeout`."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def _pg_bin() -> Path:
    """The newest Debian PostgreSQL server's bin folder (initdb is not on PATH there)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise FileNotFoundError("PostgreSQL server not installed: run `make setup-test`")
    return Path(initdb).parent


class Postgres:
    """A PostgreSQL cluster in a temp folder, on 127.0.0.1 only, password (SCRAM) logins only.

    PostgreSQL refuses to run as root: under root the server runs as Debian's `postgres` user.
    """

    def __init__(self) -> None:
        self.bin = _pg_bin()
        self.dir = Path(tempfile.mkdtemp(prefix="checkout-age-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.password = secrets.token_hex(16)  # the `postgres` superuser's
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]
        os.chmod(self.dir, 0o700)

    def _run(self, *command: str) -> None:
        done = subprocess.run([*self._as_user, *command], capture_output=True, text=True,
                              timeout=180)
        if done.returncode:
            log = (self.dir / "server.log").read_text()[-2000:] if (
                self.dir / "server.log").exists() else ""
            raise RuntimeError(f"{command[0]} failed: {done.stderr[-2000:]}\n{log}")

    def start(self) -> Postgres:
        """initdb (first time) and start; returns self."""
        if not self.data.exists():
            pwfile = self.dir / "pwfile"
            pwfile.write_text(self.password)
            if self._as_user:
                owner = pwd.getpwnam("postgres")
                os.chown(pwfile, owner.pw_uid, owner.pw_gid)
            self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                      "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8",
                      "--locale=C", "--no-sync")
            pwfile.unlink()
            with open(self.data / "postgresql.conf", "a") as conf:
                # TCP on loopback only, no Unix socket; a throw-away cluster needs no fsync.
                conf.write(f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                           "unix_socket_directories = ''\nfsync = off\nmax_connections = 200\n")
        self._ctl("start")
        return self

    def _ctl(self, action: str) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l",
                  str(self.dir / "server.log"), "-w", "-t", "120", "-m", "fast", action)

    def restart(self) -> None:
        """`pg_ctl restart -m fast`: every open connection is cut."""
        self._ctl("restart")

    def stop(self) -> None:
        """Stop the server and delete the cluster."""
        if (self.data / "postmaster.pid").exists():
            self._ctl("stop")
        shutil.rmtree(self.dir, ignore_errors=True)

    def create_database(self, name: str) -> str:
        """A role and a database, both `name`, with a generated password; returns the password."""
        password = secrets.token_hex(16)
        psql = shutil.which("psql") or str(self.bin / "psql")
        env = {**os.environ, "PGPASSWORD": self.password}
        for statement in (f"CREATE ROLE {name} LOGIN PASSWORD '{password}'",
                          f"CREATE DATABASE {name} OWNER {name}"):
            done = subprocess.run(
                [psql, "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d",
                 "postgres", "-v", "ON_ERROR_STOP=1", "-q", "-c", statement],
                env=env, capture_output=True, text=True, timeout=60)
            if done.returncode:
                raise RuntimeError(f"psql: {done.stderr}")
        return password

    def url(self, name: str, password: str, driver: str = "postgresql+psycopg2") -> str:
        """SQLAlchemy URL of database `name` as its own role."""
        return f"{driver}://{name}:{password}@127.0.0.1:{self.port}/{name}"


class Redis:
    """A Redis server on 127.0.0.1 with a generated password, no persistence."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.password = secrets.token_hex(16)
        self.process: subprocess.Popen | None = None

    def start(self) -> Redis:
        """Start and wait for PONG; returns self."""
        conf = self.home / "redis.conf"  # the password stays off the command line
        conf.write_text(f"bind 127.0.0.1\nport {self.port}\nrequirepass {self.password}\n"
                        f"save \"\"\nappendonly no\ndir {self.home}\nprotected-mode yes\n")
        server = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.process = subprocess.Popen([server, str(conf)], stdout=open(self.home / "redis.log",
                                        "w"), stderr=subprocess.STDOUT)
        wait_for(self.ping, 30, "redis to answer", 0.2)
        return self

    def ping(self) -> bool:
        """AUTH + PING over the wire protocol."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                sock.sendall(f"AUTH {self.password}\r\nPING\r\n".encode())
                answer = b""
                while answer.count(b"\r\n") < 2:
                    chunk = sock.recv(100)
                    if not chunk:
                        break
                    answer += chunk
                return answer == b"+OK\r\n+PONG\r\n"
        except OSError:
            return False

    def url(self, db: int = 0) -> str:
        """The broker URL (password in it)."""
        return f"redis://:{self.password}@127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        """Stop by PID."""
        if self.process:
            stop_process(self.process)


class SparkStandalone:
    """A Spark standalone master and one worker (2 cores, 2 GB) on loopback, stopped by PID."""

    def __init__(self, home: Path, spark_class: Path, env: dict[str, str]) -> None:
        self.home = home
        self.spark_class = str(spark_class)
        self.env = {**env, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOG_DIR": str(home / "logs"),
                    "SPARK_WORKER_DIR": str(home / "work"), "SPARK_NO_DAEMONIZE": "1"}
        # All four chosen at once: a daemon binds its ports only seconds after it starts.
        self.port, self.ui_port, self._worker_port, self._worker_ui_port = free_ports(4)
        self.master = f"spark://127.0.0.1:{self.port}"
        self.processes: list[subprocess.Popen] = []
        self.last_state_error: str | None = None  # why the status page last did not answer

    def start(self) -> SparkStandalone:
        """Start both daemons; wait until the worker has registered. Returns self."""
        self.processes.append(subprocess.Popen(
            [self.spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
             "--port", str(self.port), "--webui-port", str(self.ui_port)],
            env=self.env, stdout=open(self.home / "master.log", "w"), stderr=subprocess.STDOUT))
        self.processes.append(subprocess.Popen(
            [self.spark_class, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
             "--port", str(self._worker_port), "--webui-port", str(self._worker_ui_port),
             "--cores", "2",
             "--memory", "2g", "--work-dir", str(self.home / "work"), self.master],
            env=self.env, stdout=open(self.home / "worker.log", "w"), stderr=subprocess.STDOUT))

        def registered() -> bool:
            if any(p.poll() is not None for p in self.processes):
                logs = "".join((self.home / n).read_text()[-2000:]
                               for n in ("master.log", "worker.log"))
                raise RuntimeError(f"standalone cluster did not start:\n{logs}")
            return int(self.state().get("aliveworkers", 0)) >= 1

        try:
            wait_for(registered, 180, "the Spark worker to register")
        except TimeoutError as exc:  # say what the status page answered, and the master's log
            log = (self.home / "master.log").read_text()[-1500:]
            raise TimeoutError(f"{exc}; the master's status page at port {self.ui_port}: "
                               f"{self.last_state_error or self.state()}\n{log}") from None
        return self

    def state(self) -> dict:
        """The master's JSON status page ({} while it does not answer)."""
        try:
            url = f"http://127.0.0.1:{self.ui_port}/json/"
            with urllib.request.urlopen(url, timeout=5) as page:
                self.last_state_error = None
                return json.load(page)
        except OSError as exc:
            self.last_state_error = repr(exc)
            return {}

    def completed_apps(self) -> list[str]:
        """Names of the applications that finished on this cluster."""
        return [app["name"] for app in self.state().get("completedapps", [])]

    def stop(self) -> None:
        """SIGTERM to each daemon's own PID (spark-class execs the JVM), worker first."""
        for process in reversed(self.processes):
            stop_process(process)


class MlflowServer:
    """`mlflow server` (tracking + model registry) on 127.0.0.1: its store a SQLAlchemy URL (a
    PostgreSQL database here), artifacts served from a local folder."""

    def __init__(self, home: Path, mlflow: Path, backend_store_uri: str) -> None:
        self.home, self.mlflow, self.backend = home, str(mlflow), backend_store_uri
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> MlflowServer:
        """Start (creating its tables on first use) and wait for /health; returns self."""
        artifacts = self.home / "mlflow-artifacts"
        artifacts.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
        self.process = subprocess.Popen(
            [self.mlflow, "server", "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", "1", "--backend-store-uri", self.backend,
             "--artifacts-destination", str(artifacts)],
            env=env, stdout=open(self.home / "mlflow.log", "a"), stderr=subprocess.STDOUT,
            start_new_session=True)

        def healthy() -> bool:
            if self.process.poll() is not None:
                tail = (self.home / "mlflow.log").read_text()[-3000:]
                raise RuntimeError(f"mlflow server exited:\n{tail}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=5) as page:
                    return page.status == 200
            except OSError:
                return False

        wait_for(healthy, 240, "the MLflow server to answer")
        return self

    def stop(self) -> None:
        """SIGTERM to its process group (the server and its uvicorn workers), SIGKILL after 30 s."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
