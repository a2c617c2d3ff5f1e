"""Least privilege in the admin: every action, and the dashboard, tried by every kind of user.

For each pair the test checks the response (login redirect, 403, the list without the
action, "No action selected." or the action's report) and the tables: unchanged when the
user is refused, changed exactly as the action says when allowed. Refused requests carry
the confirmation (``confirm=yes``, ``post=yes``), so an action wrongly open to a user would
run at once and change the tables."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib import messages
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from pgqrs_django import PgqrsAdmin
from pgqrs_django.models import Archive, Dashboard, Message, Queue, Worker
from tests.admin_support import act, changelist, client_for, make_rows, staff
from tests.cli_support import snapshot

pytestmark = pytest.mark.django_db

#: Each kind of user, and the kinds of pgqrs permission (on every pgqrs model) it holds.
LEVELS: dict[str, tuple[str, ...]] = {
    "anonymous": (),
    "non-staff with every permission": ("view", "change", "delete", "add"),
    "staff without permission": (),
    "staff with view": ("view",),
    "staff with view and change": ("view", "change"),
    "staff with view, change and delete": ("view", "change", "delete"),
    "superuser": (),
}


def user_client(level: str) -> Client:
    if level == "anonymous":
        return Client()
    if level == "superuser":
        return client_for(User.objects.create_superuser("root", "root@example.com", None))
    # No password (none is needed to force a login, and hashing one is slow).
    user = User.objects.create_user("someone", is_staff=level.startswith("staff"))
    kinds = LEVELS[level]
    user.user_permissions.set(
        p
        for p in Permission.objects.filter(content_type__app_label="pgqrs")
        if p.codename.split("_", 1)[0] in kinds
    )
    return client_for(user)


@dataclasses.dataclass(frozen=True)
class Action:
    model: type[Any]
    name: str
    #: The permission (on ``model``) it needs.
    needs: str
    #: The row it is run on (a key of ``make_rows``).
    row: str
    #: True when the action did what it says to the row.
    done: Callable[[Any], bool]
    #: Puts the row in the state the action undoes (resume needs something paused).
    before: Callable[[Any], Any] | None = None
    #: What the confirmation page would post.
    confirm: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        return f"{self.model._meta.model_name}-{self.name}"


def _message(pk: int) -> Message | None:
    return Message.objects.filter(pk=pk).first()


ACTIONS = [
    Action(Queue, "pause", "change", "queue", lambda q: Queue.objects.get(pk=q.pk).paused),
    Action(
        Queue,
        "resume",
        "change",
        "queue",
        lambda q: not Queue.objects.get(pk=q.pk).paused,
        before=lambda q: PgqrsAdmin().pause_queue(q.name),
    ),
    Action(
        Queue,
        "purge",
        "change",
        "queue",
        lambda q: (
            not Message.objects.filter(queue=q).exists()
            and Archive.objects.filter(queue=q).exists()
        ),
        confirm=(("confirm", "yes"),),
    ),
    Action(
        Queue,
        "delete_selected",
        "delete",
        "queue",
        lambda q: not Queue.objects.filter(pk=q.pk).exists(),
        confirm=(("confirm", "yes"),),
    ),
    Action(
        Message,
        "release",
        "change",
        "message",
        lambda m: Message.objects.get(pk=m.pk).claimed_at is None,
    ),
    Action(
        Message,
        "delete_selected",
        "delete",
        "message",
        lambda m: _message(m.pk) is None,
        confirm=(("post", "yes"),),
    ),
    Action(
        Archive,
        "retry",
        "change",
        "archive",
        lambda a: _message(a.pk) is not None and not Archive.objects.filter(pk=a.pk).exists(),
    ),
    Action(
        Worker,
        "suspend",
        "change",
        "worker",
        lambda w: Worker.objects.get(pk=w.pk).status == Worker.Status.SUSPENDED,
    ),
    Action(
        Worker,
        "resume",
        "change",
        "worker",
        lambda w: Worker.objects.get(pk=w.pk).status == Worker.Status.READY,
        before=lambda w: PgqrsAdmin().suspend_worker(w.pk),
    ),
    Action(
        Worker,
        "shutdown",
        "change",
        "worker",
        lambda w: Worker.objects.get(pk=w.pk).shutdown_requested,
    ),
]


def allowed(level: str, needs: str) -> bool:
    return level == "superuser" or (level.startswith("staff") and needs in LEVELS[level])


def assert_sent_to_login(response: Any) -> None:
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def notes(response: Any) -> list[tuple[int, str]]:
    return [(m.level, str(m)) for m in response.wsgi_request._messages]


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("action", ACTIONS, ids=str)
def test_every_action_for_every_user(admin: PgqrsAdmin, action: Action, level: str) -> None:
    row = make_rows(admin)[action.row]
    if action.before:
        action.before(row)
    client = user_client(level)
    offered = client.get(changelist(action.model))
    before = snapshot()
    response = act(client, action.model, action.name, row.pk, **dict(action.confirm))
    after = snapshot()

    if allowed(level, action.needs):
        assert offered.context["action_form"].fields["action"].valid_value(action.name)
        assert response.status_code == 302
        assert response["Location"] == changelist(action.model)
        assert [kind for kind, _ in notes(response)] == [messages.SUCCESS]
        assert after != before and action.done(row)
        return
    assert after == before, f"{level} ran {action}"
    if level in ("anonymous", "non-staff with every permission"):
        assert_sent_to_login(offered)
        assert_sent_to_login(response)
    elif level == "staff without permission":
        assert (offered.status_code, response.status_code) == (403, 403)
    else:
        # The list is shown, without the action; posting it anyway is turned down.
        assert offered.status_code == 200
        form = offered.context["action_form"]
        assert form is None or not form.fields["action"].valid_value(action.name)
        if form is None:
            # No action at all for this user: Django shows the list again.
            assert response.status_code == 200 and notes(response) == []
        else:
            assert response.status_code == 302
            assert notes(response) == [(messages.WARNING, "No action selected.")]


@pytest.mark.parametrize("level", LEVELS)
def test_the_dashboard_for_every_user(admin: PgqrsAdmin, level: str) -> None:
    make_rows(admin)
    response = user_client(level).get(changelist(Dashboard))
    if level in ("anonymous", "non-staff with every permission"):
        assert_sent_to_login(response)
    elif allowed(level, "view"):
        assert response.status_code == 200
        assert [row["metrics"].name for row in response.context["queues"]] == ["jobs"]
    else:
        assert response.status_code == 403


def test_the_dashboard_has_its_own_permission() -> None:
    models = staff("viewer", "pgqrs.view_queue", "pgqrs.view_message", "pgqrs.view_archive")
    assert client_for(models).get(changelist(Dashboard)).status_code == 403
    watcher = staff("watcher", "pgqrs.view_dashboard")
    assert client_for(watcher).get(changelist(Dashboard)).status_code == 200
    assert client_for(watcher).get(changelist(Queue)).status_code == 403
