"""``pgqrs_worker`` subprocesses for the multi-process tests (worker, chaos, PgBouncer)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from pgqrs_django.models import Worker
from tests.databases import pgqrs_connection

ROOT = Path(__file__).resolve().parent.parent


class WorkerProcess:
    """A ``pgqrs_worker`` subprocess whose output goes to a file (a pipe could fill up)."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log_path = log
        self._log = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "django", "pgqrs_worker", *args],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.pid = self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text()

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def stop(self) -> int:
        """SIGTERM and wait; the exit code."""
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
        return self.wait()

    def kill(self) -> None:
        """SIGKILL (if still running) and reap."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait()

    def row(self) -> Worker:
        return Worker.objects.get(pid=self.pid)


def wait_until(check: Callable[[], Any], timeout: float = 60, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what or check}")
        time.sleep(0.05)


def database_clock() -> datetime:
    """The database server's clock now (``clock_timestamp()``), to compare with timestamps
    the database wrote rather than with this process's clock."""
    with pgqrs_connection().cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        return cursor.fetchone()[0]


def wait_for_backends(
    application_name: str, ask: Callable[[str, list[Any]], Any], *, gone: bool
) -> None:
    """Wait until the database connections of a process started with ``PGAPPNAME`` =
    ``application_name`` have ended (``gone``: the process was killed) or run nothing (it
    was frozen). A statement such a process sent before it died or froze still runs, and may
    commit: look at what the process held only after this. ``ask(sql, params)`` runs one
    query on another connection and returns its single value. When waiting for a killed
    process, check beforehand that its connections carry the name."""
    if not gone:  # the name must be on the connections, or there is nothing to wait for
        assert ask(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = %s)",
            [application_name],
        ), f"no connection named {application_name}"
    busy = "" if gone else " AND state = 'active'"
    deadline = time.monotonic() + 30
    quiet = 0
    while quiet < 2:  # twice in a row: a statement just sent may not have started yet
        if ask(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = %s"
            + busy
            + ")",
            [application_name],
        ):
            quiet = 0
            if time.monotonic() > deadline:
                raise AssertionError(f"the connections of {application_name} never settled")
        else:
            quiet += 1
        time.sleep(0.05)


def terminate_other_backends() -> int:
    """``pg_terminate_backend`` every other connection to this database; how many."""
    with pgqrs_connection().cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return int(cursor.fetchone()[0])
