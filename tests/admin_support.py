"""Helpers for the admin tests: URLs, posting an action, users with chosen permissions, and
one row of everything to act on."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from pgqrs_django import Consumer, PgqrsAdmin, Producer
from pgqrs_django.models import Archive
from tests.factories import ArchiveFactory, WorkerFactory


def changelist(model: type[Any]) -> str:
    return reverse(f"admin:pgqrs_{model._meta.model_name}_changelist")


def change(obj: Any) -> str:
    return reverse(f"admin:pgqrs_{obj._meta.model_name}_change", args=[obj.pk])


def act(
    client: Client, model: type[Any], action: str, *pks: Any, follow: bool = False, **extra: str
) -> Any:
    """POST an admin action on the changelist for the rows ``pks``."""
    data = {"action": action, "_selected_action": [str(pk) for pk in pks], "index": "0"}
    return client.post(changelist(model), {**data, **extra}, follow=follow)


def staff(username: str, *perms: str) -> User:
    # No password: force_login needs none, and hashing one is most of a user's cost.
    user = User.objects.create_user(username, is_staff=True)
    for perm in perms:
        app, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app, codename=codename)
        )
    return user


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def make_rows(admin: PgqrsAdmin) -> dict[str, Any]:
    """One of everything: a queue with a ready and an in-flight message, a dead archived
    message, a worker."""
    queue = admin.create_queue("jobs", visibility_timeout=300)
    Producer("jobs").enqueue({"job": 1})
    Producer("jobs").enqueue({"job": 2})
    held = Consumer("jobs").dequeue()
    assert held is not None
    dead = ArchiveFactory(queue=queue, outcome=Archive.Outcome.DEAD, error="ValueError: x")
    worker = WorkerFactory()
    worker.queues.set([queue])
    return {"queue": queue, "message": held, "archive": dead, "worker": worker}
