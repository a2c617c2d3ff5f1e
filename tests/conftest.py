from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection, connections

from pgqrs_django import PgqrsAdmin, embedded
from pgqrs_django.models import Message, Queue
from pgqrs_django.testing import pytest_plugin
from tests.worker_support import WorkerProcess

ROOT = Path(__file__).resolve().parent.parent

# `make test-pgbouncer` runs the tests marked `pgbouncer` through a PgBouncer in transaction
# pooling mode (see pgqrs_django.testing.pytest_plugin); test_pgbouncer.py checks that mode
# (and is skipped, with its reason in the summary, in every other run).
BOUNCER = pytest_plugin.bouncer

if BOUNCER is not None:

    @pytest.fixture(scope="session", autouse=True)
    def _release_pgbouncer_pools(django_db_setup: None) -> Any:
        """Runs its teardown before pytest-django drops the test database, which PgBouncer
        would otherwise still hold server connections to."""
        yield
        from django.db import connections

        connections.close_all()
        BOUNCER.close_server_connections(connection.settings_dict["NAME"])


# `make test-queue-db` (PGQRS_TEST_QUEUE_DB=1) puts the pgqrs tables on a second alias; every
# test that uses a database then gets both, as an application with a queue database would.
# test_queue_database.py checks that mode and is skipped in every other run.
QUEUE_DB: str | None = settings.QUEUE_DB
#: For the minutes-long process and server tests (chaos, outage) that `make test` already
#: runs: they exercise crashes and a stopped server, not which alias the queries use.
skip_with_a_queue_database = pytest.mark.skipif(
    QUEUE_DB is not None,
    reason="`make test` runs it; it tests crashes and a stopped server, not the alias",
)
DB_FIXTURES = {"db", "transactional_db", "django_db_reset_sequences", "live_server"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if QUEUE_DB is None:
        return
    for item in items:
        marker = item.get_closest_marker("django_db")
        if marker is None and not DB_FIXTURES & set(getattr(item, "fixturenames", ())):
            continue
        kwargs = dict(marker.kwargs) if marker is not None else {}
        if kwargs.get("databases") != "__all__":
            kwargs["databases"] = sorted({"default", QUEUE_DB, *(kwargs.get("databases") or ())})
        args = marker.args if marker is not None else ()
        item.add_marker(pytest.mark.django_db(*args, **kwargs), append=False)


def in_other_connection(work: Callable[[], Any]) -> Any:
    """``work()`` run in a separate thread, hence on a separate database connection (it sees
    only what is committed); returns its result."""
    found: list[Any] = []

    def run() -> None:
        try:
            found.append(work())
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return found[0]


@pytest.fixture
def admin() -> PgqrsAdmin:
    return PgqrsAdmin()


@pytest.fixture
def queue(db: None, admin: PgqrsAdmin) -> Queue:
    """A fresh queue with a 30 s lease and 3 attempts."""
    return admin.create_queue("jobs", visibility_timeout=30, max_attempts=3)


@pytest.fixture
def shift_time() -> Callable[..., None]:
    """Move messages' visibility time into the past, as if ``seconds`` had elapsed.

    Lets tests about leases and delays run without sleeping; one test per behaviour also
    waits for real (see test_consumer's real-time test)."""

    def shift(*ids: int, seconds: float = 3600) -> None:
        from datetime import timedelta

        from django.db.models import F

        Message.objects.filter(pk__in=ids).update(vt=F("vt") - timedelta(seconds=seconds))

    return shift


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    """Environment for a child process that must use this test's database."""
    env = dict(os.environ)
    env["DATABASE_URL"] = embedded.with_database(
        os.environ["DATABASE_URL"], connection.settings_dict["NAME"]
    )
    if QUEUE_DB is not None:
        env["PGQRS_TEST_QUEUE_URL"] = embedded.with_database(
            os.environ["DATABASE_URL"], connections[QUEUE_DB].settings_dict["NAME"]
        )
    env["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture
def run_script(subprocess_env: dict[str, str]) -> Callable[..., subprocess.Popen[str]]:
    """Start ``python -m tests.scripts.<name> args...`` against the test database."""

    def start(name: str, *args: Any, **kwargs: Any) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", f"tests.scripts.{name}", *map(str, args)],
            cwd=ROOT,
            env=subprocess_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            **kwargs,
        )

    return start


@pytest.fixture
def start_worker(
    subprocess_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """Start ``manage.py pgqrs_worker *args`` (environment overrides as keywords) against the
    test database. Under ``make test-pgbouncer`` the workers connect through PgBouncer (they
    inherit its DATABASE_URL) and poll: ``--no-listen``, as docs/pgbouncer.md says."""
    started: list[WorkerProcess] = []
    through_bouncer = ["--no-listen"] if BOUNCER is not None else []

    def start(*args: str, **env: str) -> WorkerProcess:
        worker = WorkerProcess(
            ["--log-level", "info", *through_bouncer, *args],
            {**subprocess_env, **env},
            tmp_path / f"worker-{len(started)}.log",
        )
        started.append(worker)
        return worker

    yield start
    for worker in started:  # never leave a process behind, whatever failed
        worker.kill()
