"""factory-boy factories for the pgqrs models."""

from __future__ import annotations

import factory
from django.utils import timezone

from pgqrs_django.models import Archive, Message, Queue, Worker


class QueueFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Queue
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"queue-{n}")
    visibility_timeout = 30.0
    max_attempts = 3


class WorkerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Worker

    name = factory.Sequence(lambda n: f"worker-{n}")
    hostname = "testhost"
    pid = factory.Sequence(lambda n: 10_000 + n)


class MessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Message

    queue = factory.SubFactory(QueueFactory)
    payload = factory.Sequence(lambda n: {"n": n})


class ArchiveFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Archive

    id = factory.Sequence(lambda n: 1_000_000 + n)
    queue = factory.SubFactory(QueueFactory)
    payload = factory.Sequence(lambda n: {"n": n})
    enqueued_at = factory.LazyFunction(timezone.now)
    vt = factory.LazyFunction(timezone.now)
    read_ct = 1
    outcome = Archive.Outcome.SUCCEEDED
