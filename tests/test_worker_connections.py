"""Handler runs are wrapped as Django wraps a request: ``close_old_connections()`` before and
after each one, in the handler's thread (for async handlers, in the thread their ORM calls
run on through ``sync_to_async``), so ``CONN_MAX_AGE`` and ``CONN_HEALTH_CHECKS`` apply to
handlers as they do to views."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connections

from pgqrs_django import PgqrsAdmin, Producer
from pgqrs_django.models import Archive
from pgqrs_django.worker import WorkerOptions, WorkerRuntime
from tests.worker_support import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

#: Handlers that return the backend pid of the ``default`` connection they used.
HANDLERS = {
    "sync": "backend=tests.testapp.jobs.backend_pid",
    "async": "backend=tests.testapp.jobs.backend_pid_async",
}


@pytest.fixture
def connection_settings(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Change the ``default`` alias's settings for the connections opened from now on: the
    handler threads' connections read this dict (override_settings cannot change
    DATABASES)."""

    def change(**values: Any) -> None:
        for key, value in values.items():
            monkeypatch.setitem(connections.settings["default"], key, value)

    return change


def backend_alive(pid: int) -> bool:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
        return bool(cursor.fetchone()[0])


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize(("max_age", "sessions"), [(0, 3), (60, 1)])
def test_conn_max_age_decides_whether_jobs_share_a_connection(
    admin: PgqrsAdmin,
    connection_settings: Callable[..., None],
    kind: str,
    max_age: int,
    sessions: int,
) -> None:
    # CONN_MAX_AGE=0 (Django's default): each job's connection is closed when it ends, as a
    # request's is. A positive age keeps it for the next job of the same thread.
    connection_settings(CONN_MAX_AGE=max_age)
    admin.create_queue("backend")
    Producer("backend").batch_enqueue([{}, {}, {}])
    options = WorkerOptions(
        queues=["backend"], handlers=[HANDLERS[kind]], concurrency=1, batch_size=1, burst=True
    )
    assert WorkerRuntime(options).run() == 0
    pids = [row.result["pid"] for row in Archive.objects.order_by("id")]
    assert len(pids) == 3 and len(set(pids)) == sessions, pids
    if max_age == 0:
        assert not any(backend_alive(pid) for pid in pids)  # closed, not left to the GC


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_killed_or_aged_connection_is_replaced_before_the_next_job(
    admin: PgqrsAdmin, connection_settings: Callable[..., None], kind: str
) -> None:
    # Persistent connections (2 s) with health checks. A connection killed between two jobs
    # is found dead before the next job's first query, which gets a new one instead of
    # failing. One that outlived CONN_MAX_AGE while the worker idled is closed before the
    # next job, not used by it once more.
    max_age = 2.0
    connection_settings(CONN_MAX_AGE=max_age, CONN_HEALTH_CHECKS=True)
    admin.create_queue("backend")
    runtime = WorkerRuntime(
        WorkerOptions(
            queues=["backend"], handlers=[HANDLERS[kind]], concurrency=1, poll_interval=0.1
        )
    )

    def job() -> Archive:
        msg = Producer("backend").enqueue({})
        wait_until(lambda: Archive.objects.filter(pk=msg.id).exists(), what="the job")
        return Archive.objects.get(pk=msg.id)

    thread = threading.Thread(target=runtime.run)
    thread.start()
    try:
        killed = job().result["pid"]
        assert backend_alive(killed)  # kept for the next job
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [killed])
        wait_until(lambda: not backend_alive(killed), what="the terminated backend to go")
        second = job()
        aged = second.result["pid"]
        assert backend_alive(aged)
        time.sleep(max_age + 0.1)  # the connection is now older than CONN_MAX_AGE
        third = job()
    finally:
        runtime.request_stop()
        thread.join(60)
    assert (second.outcome, second.read_ct, second.error) == ("succeeded", 1, "")
    assert aged != killed
    assert third.result["pid"] != aged and not backend_alive(aged)
