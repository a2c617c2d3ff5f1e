"""current_job(): what a running handler may ask about its own job (pgqrs_django/context.py)."""

from __future__ import annotations

import pytest

import pgqrs_django
from pgqrs_django import PgqrsAdmin, Producer
from pgqrs_django.exceptions import NoCurrentJob
from pgqrs_django.models import Archive, Message
from pgqrs_django.worker import WorkerOptions, WorkerRuntime

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("handler", ["job_context", "job_context_async"])
def test_a_handler_sees_its_message_queue_attempt_and_worker(
    admin: PgqrsAdmin, handler: str
) -> None:
    admin.create_queue("ctx")
    first = Producer("ctx").enqueue({"n": 1})
    retried = Producer("ctx").enqueue({"n": 2})
    # A second delivery: the message was claimed once before (read_ct 1) and came back.
    Message.objects.filter(pk=retried.pk).update(read_ct=1)
    runtime = WorkerRuntime(
        WorkerOptions(
            queues=["ctx"],
            handlers=[f"tests.testapp.jobs.{handler}"],
            burst=True,
            poll_interval=0.2,
        )
    )
    assert runtime.run() == 0
    worker = runtime.worker.name  # type: ignore[union-attr]
    results = {row.id: row.result for row in Archive.objects.all()}
    assert results == {
        first.id: {"id": first.id, "queue": "ctx", "attempt": 1, "worker": worker},
        retried.id: {"id": retried.id, "queue": "ctx", "attempt": 2, "worker": worker},
    }


def test_outside_a_handler_it_is_a_clear_error() -> None:
    with pytest.raises(NoCurrentJob, match="only available inside a handler"):
        pgqrs_django.current_job()
