"""Shared plumbing of the benchmark: databases, the runner processes, worker processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: The database pgqrs and the SQL floor run in; each peer gets ``pgqrs_bench_<peer>``.
DATABASE = "pgqrs_bench"


def server_url() -> str:
    """DATABASE_URL's server, or the machine's default PostgreSQL."""
    return os.environ.get("BENCH_SERVER_URL") or os.environ.get(
        "DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )


def database_url(name: str) -> str:
    from pgqrs_django import embedded

    return embedded.with_database(server_url(), name)


def fresh_database(name: str) -> str:
    """Drop and create database ``name`` on the server; returns its URL."""
    import psycopg
    from psycopg import sql

    drop_database(name)
    with psycopg.connect(database_url("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return database_url(name)


def drop_database(name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(database_url("postgres"), autocommit=True) as conn:
        statement = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        conn.execute(statement.format(sql.Identifier(name)))


def setup_django(url: str) -> None:
    """Configure this process for pgqrs on ``url`` (bench.settings) and migrate."""
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def child_env(**extra: str) -> dict[str, str]:
    path = str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")
    return dict(os.environ, PYTHONPATH=path, **extra)


def run_action(spec: dict[str, Any], timeout: float = 900) -> Any:
    """Run one action of ``bench.runner`` in a child process; returns its JSON answer."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.runner", json.dumps(spec)],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise BenchError(f"{spec['system']} {spec['action']} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


class BenchError(Exception):
    """A measured path errored or lost messages."""


def rss_mb(pid: int) -> float | None:
    """Resident set size of process ``pid`` in MB (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process ``pid`` (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ServerCpu:
    """CPU time spent by the server's client backends of one database while a drain runs,
    sampled from /proc (the server runs on this machine): every 0.05 s, each backend's CPU
    time is read; the total is the sum of each backend's last reading minus its first."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
        self.conn = psycopg.connect(database_url("postgres"), autocommit=True)
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        rows = self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND backend_type = "
            "'client backend'",
            [self.name],
        ).fetchall()
        for (pid,) in rows:
            value = cpu_seconds(pid)
            if value is not None:
                self.first.setdefault(pid, value)
                self.last[pid] = value

    def _run(self) -> None:
        while not self.stop.wait(0.05):
            self._sample()

    def start(self) -> None:
        self._sample()
        self.thread.start()

    def finish(self) -> float:
        self.stop.set()
        self.thread.join()
        self.conn.close()
        return sum(self.last[pid] - self.first[pid] for pid in self.first)


def parallel_drain(
    spec: dict[str, Any], processes: int, timeout: float = 900, rss: list[float] | None = None
) -> tuple[float, list[dict[str, Any]], float]:
    """Start ``processes`` drain runners, wait until each is ready (imported, connected),
    release them together and wait for all to finish. Returns (seconds from the release to
    the last finish, each runner's answer, the server's CPU seconds). With ``rss``, the
    first runner's resident size is appended to it every 0.25 s while it runs."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "bench.runner", json.dumps(spec)],
            cwd=ROOT,
            env=child_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if line.strip() != "ready":
                _, err = proc.communicate(timeout=30)
                raise BenchError(f"{spec['system']} runner did not start:\n{err[-3000:]}")
        server = ServerCpu(spec["db"])
        server.start()
        started = time.time()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        if rss is not None:
            sampler = threading.Thread(target=_sample, args=(procs[0], rss), daemon=True)
            sampler.start()
        answers = []
        for proc in procs:
            out, err = proc.communicate(timeout=timeout)
            if proc.returncode != 0:
                raise BenchError(f"{spec['system']} drain failed:\n{err[-3000:]}")
            answers.append(json.loads(out.strip().splitlines()[-1]))
        server_cpu = server.finish()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    elapsed = max(answer["end"] for answer in answers) - started
    return elapsed, answers, server_cpu


def _sample(proc: subprocess.Popen[str], out: list[float]) -> None:
    while proc.poll() is None:
        value = rss_mb(proc.pid)
        if value is not None:
            out.append(value)
        time.sleep(0.25)


def start_worker(*args: str) -> subprocess.Popen[bytes]:
    """``manage.py pgqrs_worker ARGS`` against the benchmark database."""
    return subprocess.Popen(
        [sys.executable, "-m", "django", "pgqrs_worker", "--log-level", "warning", *args],
        cwd=ROOT,
        env=child_env(),
    )


def wait_for_workers(count: int, timeout: float = 60.0) -> None:
    """Until ``count`` workers are registered and running."""
    from pgqrs_django.models import Worker

    deadline = time.monotonic() + timeout
    while Worker.objects.running().count() < count:
        if time.monotonic() > deadline:
            raise BenchError(f"{count} workers did not start within {timeout:g}s")
        time.sleep(0.05)


def stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        code = proc.wait(timeout=60)
        if code != 0:
            raise BenchError(f"worker exited with {code}")
