"""The django-tasks-db peer's task (imported only in its runner, inside the bench venv)."""

from __future__ import annotations

from django_tasks import task
from django_tasks_db.models import DBTaskResult

from bench import runner

__all__ = ["DBTaskResult", "bench"]


@task()
def bench(n: int = 0) -> None:
    runner.count(n)
