"""Handlers the worker tests run (autodiscovered: tests.testapp is an installed app).

Each records its execution in ``Execution`` before doing anything else, so a test can tell
that a job started. ``payload["sleep"]`` (or the ``TESTAPP_SLEEP`` environment variable, which
wins) makes a job take that many seconds after it started.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from asgiref.sync import sync_to_async
from django.db import connection

import pgqrs_django
from pgqrs_django.models import Message
from tests.testapp.models import Execution


def _sleep_seconds(message: Message) -> float:
    if "TESTAPP_SLEEP" in os.environ:
        return float(os.environ["TESTAPP_SLEEP"])
    payload = message.payload
    return float(payload.get("sleep", 0)) if isinstance(payload, dict) else 0.0


def _number(message: Message) -> Any:
    return message.payload.get("n") if isinstance(message.payload, dict) else None


@pgqrs_django.handler("work")
def work(message: Message) -> dict[str, Any]:
    Execution.objects.create(msg_id=message.id, pid=os.getpid())
    time.sleep(_sleep_seconds(message))
    return {"n": _number(message), "pid": os.getpid()}


@pgqrs_django.handler("work-async")
async def work_async(message: Message) -> dict[str, Any]:
    await Execution.objects.acreate(msg_id=message.id, pid=os.getpid())
    await asyncio.sleep(_sleep_seconds(message))
    return {"n": _number(message), "async": True}


@pgqrs_django.handler("fail-sync")
def fail_sync(message: Message) -> None:
    Execution.objects.create(msg_id=message.id, pid=os.getpid())
    raise ValueError(f"sync handler failed on message {message.id}")


@pgqrs_django.handler("fail-async")
async def fail_async(message: Message) -> None:
    await Execution.objects.acreate(msg_id=message.id, pid=os.getpid())
    raise RuntimeError(f"async handler failed on message {message.id}")


@pgqrs_django.handler("odd-result")
def odd_result(message: Message) -> object:
    Execution.objects.create(msg_id=message.id, pid=os.getpid())
    return {1, 2, 3}  # a set: not JSON


def record(message: Message) -> str:
    """Not registered: used through ``--handler tests.testapp.jobs.record``."""
    Execution.objects.create(msg_id=message.id, pid=os.getpid())
    return "recorded"


def backend_pid(message: Message) -> dict[str, int]:
    """Not registered: reports the database session it ran on
    (tests/test_worker_connections.py)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return {"pid": cursor.fetchone()[0]}


async def backend_pid_async(message: Message) -> dict[str, int]:
    """Not registered: the same from an async handler, whose ORM calls go through
    sync_to_async."""
    return await sync_to_async(backend_pid)(message)


def trivial(message: Message) -> None:
    """Not registered: does nothing (throughput benchmarks)."""


@pgqrs_django.handler("chaos")
def chaos(message: Message) -> None:
    """Records the lease it runs under (tests/test_chaos.py, tests/test_outage.py)."""
    Execution.objects.create(
        msg_id=message.id,
        pid=os.getpid(),
        read_ct=message.read_ct,
        worker_id=message.consumer_id,
    )
    time.sleep(_sleep_seconds(message))


def job_context(message: Message) -> dict[str, Any]:
    """Not registered: returns what current_job() says (tests/test_context.py)."""
    job = pgqrs_django.current_job()
    return {"id": job.message.id, "queue": job.queue, "attempt": job.attempt, "worker": job.worker}


async def job_context_async(message: Message) -> dict[str, Any]:
    """Not registered: the same from an async handler, and from the sync code it awaits."""
    job = pgqrs_django.current_job()
    seen_in_thread = await sync_to_async(pgqrs_django.current_job)()
    assert seen_in_thread is job
    return {"id": job.message.id, "queue": job.queue, "attempt": job.attempt, "worker": job.worker}
