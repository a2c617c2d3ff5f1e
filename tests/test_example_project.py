"""The example project's demo runs end to end (in a scratch database of the test server)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from pgqrs_django import embedded
from tests.conftest import ROOT

pytestmark = pytest.mark.slow


@pytest.fixture
def scratch_database() -> Iterator[str]:
    url = os.environ["DATABASE_URL"]
    name = f"pgqrs_demo_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield embedded.with_database(url, name)
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_demo_accounts_for_every_job_and_runs_again(scratch_database: str) -> None:
    env = {**os.environ, "DATABASE_URL": scratch_database}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    for _ in range(2):  # idempotent: a second run starts from a clean slate
        done = subprocess.run(
            [sys.executable, "manage.py", "demo", "--jobs", "200"],
            cwd=ROOT / "example_project",
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Every job accounted for: 201 succeeded + 2 dead = 203 enqueued" in done.stdout
        assert "QUEUE    READY" in done.stdout and "Dead-lettered jobs (2" in done.stdout
    with psycopg.connect(scratch_database) as conn:
        customers = conn.execute("SELECT count(*) FROM shop_customer").fetchone()
    assert customers == (3,)  # the rolled-back signup left no customer
    # The project's admin (`make serve`) has the pgqrs pages, open to the demo superuser.
    pages = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", ADMIN_PAGES],
        cwd=ROOT / "example_project",
        env={**env, "DJANGO_ALLOWED_HOSTS": "testserver"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert pages.returncode == 0, pages.stdout + pages.stderr
    # The last line: Django 5.2's shell may first say what it imported automatically.
    last = pages.stdout.strip().splitlines()[-1]
    assert last.split() == ["200", "200", "200", "emails", "images", "reports"]


ADMIN_PAGES = """
from django.test import Client
client = Client()
assert client.login(username="admin", password="admin")
dashboard = client.get("/admin/pgqrs/dashboard/")
import re
print(dashboard.status_code, client.get("/admin/pgqrs/archive/?outcome__exact=dead").status_code,
      client.get("/admin/pgqrs/message/").status_code,
      *re.findall(r'<tr data-queue="([^"]+)"', dashboard.content.decode()))
"""
