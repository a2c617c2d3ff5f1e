"""Django tasks the backend tests enqueue and ``pgqrs_worker`` runs (imported by dotted path).

Django 6 has the framework as ``django.tasks``; Django 5.2 uses the ``django_tasks`` backport.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from tests.testapp.models import Execution

try:
    from django.tasks import task
except ImportError:
    from django_tasks import task


class ReportError(Exception):
    """A task's own exception class (its path is recorded in the result's errors)."""


@task
def add(a: int, b: int) -> int:
    return a + b


@task(priority=10, queue_name="tasks-other")
def shout(text: str, *, times: int = 1) -> str:
    return (text.upper() + "!") * times


@task
async def add_async(a: int, b: int) -> dict[str, Any]:
    await asyncio.sleep(0)
    return {"sum": a + b, "async": True}


@task
def fail(reason: str) -> None:
    raise ReportError(f"report failed: {reason}")


@task
def fail_builtin() -> None:
    raise ValueError("line one\nline two")


@task(takes_context=True)
def record(context: Any, label: str) -> dict[str, Any]:
    """Log the execution (in run order) and return what the context says."""
    Execution.objects.create(msg_id=int(context.task_result.id), pid=os.getpid())
    return {
        "label": label,
        "id": context.task_result.id,
        "attempt": context.attempt,
        "status": str(context.task_result.status),
    }


@task
def not_json() -> set[int]:
    return {1, 2}


@task(backend="dummy")
def elsewhere() -> None:
    """A task of another backend: pgqrs_worker refuses to run it."""
