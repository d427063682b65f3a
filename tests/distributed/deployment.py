"""A real multi-process Airflow deployment on loopback: PostgreSQL, Redis, CeleryExecutor, two triggerers.

One module, usable from the distributed tests (a session fixture) and from ``benchmarks/``:

    with Deployment.start_all(Path(tempfile.mkdtemp())) as dep:
        dep.trigger_dags(["my_dag"]) ...

What runs, each as its own process group with its output in ``<root>/logs/<name>.log``:

* PostgreSQL 15 (Debian's package) as the ``postgres`` system user (it refuses to run as root),
  ``initdb``/``pg_ctl`` on a free port, data in ``<root>/pg``;
* Redis 7 (Debian's package) on a free port, no persistence: the Celery broker (db 0) and result
  backend (db 1);
* the ModelsLab simulator (``tests.integration.reliability.simproc``, request log kept);
* Airflow 3.3: ``api-server``, ``scheduler``, ``dag-processor``, two ``triggerer`` and two
  ``celery worker`` processes, all on one AIRFLOW_HOME in ``<root>/airflow``.

Every component gets its own host name (``[core] hostname_callable`` reads ``DIST_COMPONENT``), so
the ``job`` table tells the two triggerers apart and ``task_instance.hostname`` the two workers.
The failover timeouts are short and explicit (:data:`FAILOVER`); :meth:`Deployment.describe`
prints them. :meth:`Deployment.stop` ends everything, also after a failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.integration.airflow_run import AIRFLOW, CANARY_KEY, REPO, airflow_env, free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
#: Debian packages that provide what the deployment runs
APT_PACKAGES = ("postgresql", "redis-server")
#: Python distributions the deployment needs in the venv (``make test-distributed`` installs them)
PY_MODULES = {
    "airflow.providers.celery": "apache-airflow-providers-celery",
    "airflow.providers.postgres": "apache-airflow-providers-postgres",
    "psycopg2": "psycopg2-binary",
    "redis": "redis",
}

#: timeouts that make failover observable in a test run, with the option that sets each
FAILOVER: dict[str, str] = {
    # a triggerer whose heartbeat is older than this is dead: its triggers go to the other one
    "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "15",
    "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
    # a running task instance whose worker sent no heartbeat for this long is failed (and retried)
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "3",
    # triggers claimed per triggerer loop: small, so two triggerers share a burst of deferrals
    "AIRFLOW__TRIGGERER__MAX_TRIGGER_TO_SELECT_PER_LOOP": "10",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
}


class Missing(RuntimeError):
    """Something the deployment needs is not installed and cannot be installed here."""


def _is_root() -> bool:
    return os.geteuid() == 0


def missing_pieces() -> list[str]:
    """What is not installed (binaries and Python modules), in words for a skip message."""
    import importlib.util

    missing = [
        f"{path} (Debian package {pkg})"
        for path, pkg in (
            (PG_BIN / "initdb", "postgresql"),
            (PG_BIN / "pg_ctl", "postgresql"),
            (PG_BIN / "pg_dump", "postgresql"),
            (Path("/usr/bin/redis-server"), "redis-server"),
        )
        if not path.exists()
    ]
    for module, dist in PY_MODULES.items():
        if importlib.util.find_spec(module) is None:
            missing.append(f"Python module {module} (pip install {dist})")
    try:
        import pwd

        pwd.getpwnam("postgres")
    except KeyError:
        missing.append("the 'postgres' system user (Debian package postgresql)")
    return missing


def ensure_installed() -> None:
    """Install the Debian packages when missing (needs root); raise :class:`Missing` otherwise."""
    missing = missing_pieces()
    if not missing:
        return
    debian = [m for m in missing if "Debian package" in m or "system user" in m]
    if debian and _is_root():
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=600)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *APT_PACKAGES],
            check=True,
            env=env,
            timeout=900,
        )
        missing = missing_pieces()
    if missing:
        need = "; ".join(missing)
        if not _is_root():
            need += " (and root, to install Debian packages and to run PostgreSQL as 'postgres')"
        raise Missing(f"the distributed deployment needs: {need}. Run `make test-distributed` as root.")


def _as_postgres(*cmd: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["runuser", "-u", "postgres", "--", *cmd], capture_output=True, text=True, check=True, **kwargs
    )


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc), deepest last."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def cpu_seconds_tree(pid: int) -> float:
    """CPU seconds of a process and everything under it, exited-and-reaped children included."""
    total = 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    for one in [pid, *_descendants(pid)]:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(f) for f in fields[11:15]) / ticks
    return total


@dataclass
class Component:
    name: str
    cmd: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class Deployment:
    """The whole deployment under ``root``; start with :meth:`start_all`, end with :meth:`stop`."""

    root: Path
    workers: int = 2
    worker_concurrency: int = 4
    triggerers: int = 2
    triggerer_capacity: int = 1000
    parallelism: int = 32
    dags: list[Path] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)
    #: the connection's per-call HTTP timeout (seconds): above the simulator's slow answers
    conn_timeout: float = 15
    components: dict[str, Component] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)  # the postgres user has to reach <root>/pg
        self.home = self.root / "airflow"
        self.logs = self.root / "logs"
        self.logs.mkdir(exist_ok=True)
        (self.home / "dags").mkdir(parents=True, exist_ok=True)
        self.pg_dir = self.root / "pg"
        self.pg_port = free_port()
        self.redis_port = free_port()
        self.api_port = free_port()
        self.sim: Any = None
        from cryptography.fernet import Fernet

        self.fernet_key = Fernet.generate_key()
        self._db: Any = None

    # ----- settings ----------------------------------------------------------------------------

    @property
    def sql_alchemy_conn(self) -> str:
        return f"postgresql+psycopg2://airflow@127.0.0.1:{self.pg_port}/airflow"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}"

    def airflow_env(self, component: str = "cli") -> dict[str, str]:
        base = f"http://127.0.0.1:{self.api_port}"
        env = airflow_env(
            self.home,
            self.sim.url if self.sim else None,
            **{
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.sql_alchemy_conn,
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CORE__FERNET_KEY": self.fernet_key.decode(),
                "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
                "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "512",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.distributed.hostname.component_hostname",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/",
                "AIRFLOW__API__BASE_URL": base,
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__API_AUTH__JWT_SECRET": "distributed-tests-only-" + "0" * 32,
                "AIRFLOW__CELERY__BROKER_URL": f"{self.redis_url}/0",
                "AIRFLOW__CELERY__RESULT_BACKEND": f"{self.redis_url}/1",
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.worker_concurrency),
                "AIRFLOW__TRIGGERER__CAPACITY": str(self.triggerer_capacity),
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "2",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
                "AIRFLOW__SCHEDULER__TRIGGER_TIMEOUT_CHECK_INTERVAL": "2",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                **FAILOVER,
                "PYTHONPATH": str(REPO),
                # the tests read component logs while they run ("Heartbeat recovered...")
                "PYTHONUNBUFFERED": "1",
                "DIST_COMPONENT": component,
                **self.extra_env,
            },
        )
        if self.sim is not None:
            env["AIRFLOW_CONN_MODELSLAB_DEFAULT"] = json.dumps(
                {
                    "conn_type": "modelslab",
                    "password": CANARY_KEY,
                    "host": self.sim.url,
                    "extra": {"timeout": self.conn_timeout},
                }
            )
        return env

    def describe(self) -> str:
        """The settings a reader of the test log needs: versions, ports, failover timeouts."""
        from importlib.metadata import version

        lines = [
            f"deployment root {self.root}",
            f"PostgreSQL 127.0.0.1:{self.pg_port}, Redis 127.0.0.1:{self.redis_port}, "
            f"API server 127.0.0.1:{self.api_port}, simulator {self.sim.url if self.sim else '-'}",
            f"apache-airflow {version('apache-airflow')}, providers-celery "
            f"{version('apache-airflow-providers-celery')}, providers-postgres "
            f"{version('apache-airflow-providers-postgres')}, celery {version('celery')}",
            f"{self.workers} Celery workers x concurrency {self.worker_concurrency}, {self.triggerers} "
            f"triggerers x capacity {self.triggerer_capacity}, parallelism {self.parallelism}",
            "failover settings: " + ", ".join(f"{k}={v}" for k, v in FAILOVER.items()),
        ]
        return "\n".join(lines)

    # ----- lifecycle ---------------------------------------------------------------------------

    @classmethod
    def start_all(cls, root: Path, **kwargs: Any) -> Deployment:
        """Install what is missing, start every process; on any failure stop what started."""
        ensure_installed()
        dep = cls(root, **kwargs)
        try:
            dep.start()
        except BaseException:
            dep.stop()
            raise
        return dep

    def start(self) -> None:
        from tests.integration.reliability.simproc import SimProcess

        begun = time.monotonic()
        self.start_postgres()
        self.start_redis()
        self.sim = SimProcess(self.logs / "simulator.log", key=CANARY_KEY).start()
        for dag in self.dags:
            shutil.copy(dag, self.home / "dags" / dag.name)
        self.timings["services"] = time.monotonic() - begun
        migrated = subprocess.run(
            [AIRFLOW, "db", "migrate"],
            env=self.airflow_env(),
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=600,
        )
        (self.logs / "db-migrate.log").write_text(migrated.stdout + migrated.stderr)
        if migrated.returncode:
            raise RuntimeError(f"airflow db migrate failed:\n{migrated.stderr[-4000:]}")
        self.timings["migrate"] = time.monotonic() - begun - self.timings["services"]
        self.add("api-server", "api-server", "-H", "127.0.0.1", "-p", str(self.api_port), "-w", "1")
        self.add("scheduler", "scheduler")
        self.add("dag-processor", "dag-processor")
        for i in range(1, self.triggerers + 1):
            self.add(f"triggerer{i}", "triggerer", "--capacity", str(self.triggerer_capacity))
        for i in range(1, self.workers + 1):
            self.add(f"worker{i}", "celery", "worker", "--celery-hostname", f"worker{i}@%h")
        for name in self.components:
            self.launch(name)
        self.wait_until("the API server", self._api_up, 240)
        self.timings["airflow"] = time.monotonic() - begun - sum(self.timings.values())

    def _api_up(self) -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.api_port}/api/v2/monitor/health", timeout=5):
                return True
        except OSError:
            return False

    def add(self, name: str, *args: str) -> None:
        env = self.airflow_env(name)
        # each process serving logs needs a port of its own on one host
        env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] = str(free_port())
        env["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"] = str(free_port())
        self.components[name] = Component(name, [AIRFLOW, *args], env)

    def launch(self, name: str) -> None:
        comp = self.components[name]
        with (self.logs / f"{name}.log").open("ab") as log:
            comp.proc = subprocess.Popen(
                comp.cmd,
                env=comp.env,
                cwd=self.home,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        comp.starts += 1

    def kill(self, name: str) -> list[int]:
        """``kill -9`` a component and every process under it (a machine or pod lost); their pids."""
        comp = self.components[name]
        pids = [comp.pid, *_descendants(comp.pid)]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(comp.pid, signal.SIGKILL)
        assert comp.proc is not None
        comp.proc.wait(timeout=30)
        return pids

    def owner_of(self, pid: int) -> str | None:
        """Which component ``pid`` runs under (itself or a descendant)."""
        for name, comp in self.components.items():
            if comp.alive() and (pid == comp.pid or pid in _descendants(comp.pid)):
                return name
        return None

    def cpu_report(self) -> dict[str, float]:
        """CPU seconds used so far by each running component (its whole process tree)."""
        return {name: round(cpu_seconds_tree(c.pid), 1) for name, c in self.components.items() if c.alive()}

    def stop(self) -> None:
        """Stop everything that was started, Airflow first; safe after a partial start or twice."""
        for comp in self.components.values():
            if comp.alive():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(comp.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for comp in self.components.values():
            if comp.proc is None:
                continue
            with contextlib.suppress(subprocess.TimeoutExpired):
                comp.proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(comp.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                comp.proc.wait(timeout=5)
        if self._db is not None:
            with contextlib.suppress(Exception):
                self._db.close()
            self._db = None
        if self.sim is not None:
            with contextlib.suppress(Exception):
                self.sim.stop()
        self.stop_redis()
        self.stop_postgres()

    def __enter__(self) -> Deployment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----- PostgreSQL ---------------------------------------------------------------------------

    def start_postgres(self) -> None:
        data = self.pg_dir / "data"
        if not data.exists():
            self.pg_dir.mkdir(exist_ok=True)
            shutil.chown(self.pg_dir, "postgres", "postgres")
            _as_postgres(
                str(PG_BIN / "initdb"), "-D", str(data), "-U", "airflow", "--auth=trust", "-E", "UTF8",
                "--no-sync", timeout=300,
            )  # fmt: skip
        self.pg_ctl("start")
        created = subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", str(self.pg_port), "-U", "airflow", "-d", "postgres",
             "-tAc", "SELECT 1 FROM pg_database WHERE datname='airflow'"],
            capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
        if not created.stdout.strip():
            subprocess.run(
                ["psql", "-h", "127.0.0.1", "-p", str(self.pg_port), "-U", "airflow", "-d", "postgres",
                 "-c", "CREATE DATABASE airflow"],
                capture_output=True, text=True, check=True, timeout=60,
            )  # fmt: skip

    def pg_ctl(self, action: str) -> None:
        opts = (
            f"-p {self.pg_port} -c listen_addresses=127.0.0.1 -k {self.pg_dir} -c max_connections=300 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        args = [str(PG_BIN / "pg_ctl"), "-D", str(self.pg_dir / "data"), "-w", "-t", "120"]
        if action == "start":
            args += ["-l", str(self.pg_dir / "postgresql.log"), "-o", opts, "start"]
        else:
            args += ["-m", "fast", action]
        _as_postgres(*args, timeout=180)

    def stop_postgres(self) -> None:
        if (self.pg_dir / "data" / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.SubprocessError):
                self.pg_ctl("stop")

    def restart_postgres(self, down: float) -> tuple[float, float]:
        """Stop PostgreSQL (fast shutdown cuts every session), stay down ``down`` s, start it again."""
        if self._db is not None:
            with contextlib.suppress(Exception):
                self._db.close()
            self._db = None
        self.pg_ctl("stop")
        stopped = time.time()
        time.sleep(down)
        self.pg_ctl("start")
        return stopped, time.time()

    def pg_dump(self) -> bytes:
        done = subprocess.run(
            [str(PG_BIN / "pg_dump"), "-h", "127.0.0.1", "-p", str(self.pg_port), "-U", "airflow", "airflow"],
            capture_output=True,
            check=True,
            timeout=300,
        )
        return done.stdout

    def db(self) -> Any:
        import psycopg2

        if self._db is None or self._db.closed:
            self._db = psycopg2.connect(host="127.0.0.1", port=self.pg_port, user="airflow", dbname="airflow")
            self._db.autocommit = True
        return self._db

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """One query on the metadata DB; ``?`` placeholders (as the SQLite helpers use) work too."""
        import psycopg2

        try:
            with self.db().cursor() as cur:
                cur.execute(sql.replace("?", "%s"), params)
                return list(cur.fetchall()) if cur.description else []
        except psycopg2.OperationalError:
            self._db = None
            raise

    # ----- Redis --------------------------------------------------------------------------------

    def start_redis(self) -> None:
        redis_dir = self.root / "redis"
        redis_dir.mkdir(exist_ok=True)
        with (self.logs / "redis.log").open("ab") as log:
            self._redis = subprocess.Popen(
                ["/usr/bin/redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                 "--dir", str(redis_dir), "--save", "", "--appendonly", "no", "--protected-mode", "yes"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        import redis

        client = redis.Redis(port=self.redis_port)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline or self._redis.poll() is not None:
                    raise
                time.sleep(0.1)

    def stop_redis(self) -> None:
        proc = getattr(self, "_redis", None)
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def redis_items(self) -> list[tuple[str, bytes]]:
        """Every key and value in every Redis database, as (where, bytes) pairs."""
        import redis

        items: list[tuple[str, bytes]] = []
        for number in range(16):
            client = redis.Redis(port=self.redis_port, db=number)
            for key in client.scan_iter(count=1000):
                where = f"redis db{number} {key!r}"
                items.append((where + " (key)", key))
                kind = client.type(key).decode()
                values: list[bytes] = []
                if kind == "string":
                    values = [client.get(key) or b""]
                elif kind == "list":
                    values = list(client.lrange(key, 0, -1))
                elif kind == "hash":
                    values = [b for pair in client.hgetall(key).items() for b in pair]
                elif kind == "set":
                    values = list(client.smembers(key))
                elif kind == "zset":
                    values = [m for m, _ in client.zrange(key, 0, -1, withscores=True)]
                items.extend((where, value) for value in values)
        return items

    # ----- Airflow helpers ----------------------------------------------------------------------

    def check_alive(self, *allow_dead: str) -> None:
        dead = {
            n: c.proc.returncode
            for n, c in self.components.items()
            if n not in allow_dead and c.proc is not None and c.proc.poll() is not None
        }
        if dead:
            raise AssertionError(f"Airflow components exited: {dead}\n{self.logs_tail()}")

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def logs_tail(self, chars: int = 2500) -> str:
        return "\n".join(f"--- {n} ---\n{self.log(n)[-chars:]}" for n in self.components)

    def wait_until(
        self, what: str, check: Any, timeout: float, interval: float = 0.5, allow_dead: tuple[str, ...] = ()
    ) -> Any:
        """Call ``check()`` until it returns something truthy; fail with the logs after ``timeout``."""
        import psycopg2

        deadline = time.monotonic() + timeout
        while True:
            self.check_alive(*allow_dead)
            try:
                value = check()
            except psycopg2.Error:
                self._db = None
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{self.logs_tail()}")
            time.sleep(interval)

    def wait_for_dags(self, dag_ids: list[str], timeout: float = 240) -> None:
        self.wait_until(
            f"DAGs {dag_ids} to be parsed",
            lambda: {r[0] for r in self.query("SELECT dag_id FROM dag WHERE NOT is_stale")} >= set(dag_ids),
            timeout,
            interval=1.0,
        )

    def trigger_dags(self, dag_ids: list[str], conf: dict[str, Any] | None = None) -> dict[str, str]:
        """Trigger ``dag_ids`` in one Python process; their run ids."""
        script = (
            "import json, sys\n"
            "from airflow.api.client import get_current_api_client\n"
            "client = get_current_api_client()\n"
            "for dag_id in sys.argv[2:]:\n"
            "    run = client.trigger_dag(dag_id=dag_id, conf=json.loads(sys.argv[1]))\n"
            "    print('RUN', dag_id, run['dag_run_id'] if isinstance(run, dict) else run.run_id)\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", script, json.dumps(conf or {}), *dag_ids],
            env=self.airflow_env(),
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"triggering {dag_ids} failed: {done.stdout}{done.stderr[-3000:]}")
        runs = {}
        for line in done.stdout.splitlines():
            if line.startswith("RUN "):
                _, dag_id, run_id = line.split(" ", 2)
                runs[dag_id] = run_id
        return runs

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float, allow_dead: tuple[str, ...] = ()) -> str:
        return str(
            self.wait_until(
                f"{dag_id} {run_id} to finish",
                lambda: self.query(
                    "SELECT state FROM dag_run WHERE dag_id=%s AND run_id=%s "
                    "AND state IN ('success', 'failed')",
                    dag_id,
                    run_id,
                ),
                timeout,
                interval=1.0,
                allow_dead=allow_dead,
            )[0][0]
        )

    def submits(self) -> dict[str, list[int]]:
        """Accepted submissions by prompt: the job ids the simulator created for each prompt."""
        from tests.integration.reliability.simproc import submit_route

        found: dict[str, list[int]] = {}
        for entry in self.sim.all_requests():
            path = entry.get("path", "")
            if entry.get("method") == "POST" and submit_route(path) and entry.get("status") == 200:
                prompt = str((entry.get("body") or {}).get("prompt"))
                found.setdefault(prompt, []).append(int(entry["job_id"]))
        return found

    def task_log_dir(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> Path:
        folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        return folder / f"map_index={map_index}" if map_index >= 0 else folder
