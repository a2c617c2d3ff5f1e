"""Shared plumbing of the benchmark scripts: a scratch database and worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def scratch_database() -> Iterator[str]:
    """A fresh database (migrated) on DATABASE_URL's server, or on an embedded server;
    yields its URL and drops it afterwards."""
    import psycopg

    from pgqrs_django import embedded

    server = os.environ.get("DATABASE_URL") or embedded.start_temporary()
    name = f"pgqrs_bench_{uuid.uuid4().hex[:8]}"
    admin_url = embedded.with_database(server, "postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = embedded.with_database(server, name)
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    try:
        yield url
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_worker(*args: str) -> subprocess.Popen[bytes]:
    """``manage.py pgqrs_worker ARGS`` against the scratch database."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen(
        [sys.executable, "-m", "django", "pgqrs_worker", "--log-level", "warning", *args],
        cwd=ROOT,
        env=env,
    )


def wait_for_workers(count: int, timeout: float = 60.0) -> None:
    """Until ``count`` workers are registered and running."""
    from pgqrs_django.models import Worker

    deadline = time.monotonic() + timeout
    while Worker.objects.running().count() < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"{count} workers did not start within {timeout:g}s")
        time.sleep(0.05)


def stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        code = proc.wait(timeout=60)
        if code != 0:
            raise SystemExit(f"worker exited with {code}")
