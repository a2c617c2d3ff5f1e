"""A per-second periodic job for the two-worker test of test_periodic.py. Not a ``jobs.py``:
workers import it with ``--handler tests.testapp.periodic_jobs``, so the other tests' workers
do not run this schedule."""

from __future__ import annotations

import os

import pgqrs_django
from pgqrs_django.models import Message


@pgqrs_django.periodic("* * * * * *", queue="ticks", payload={"every": "second"}, name="tick")
def tick(message: Message) -> dict[str, int]:
    return {"pid": os.getpid()}
