"""System checks for the PGQRS settings (``manage.py check``). Each ID is documented in
docs/checks.md."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register
from django.db import connections, router

from . import conf
from .exceptions import InvalidSetting


@register("pgqrs")
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    try:
        raw = conf.user_settings()
    except InvalidSetting as exc:
        return [
            Error(
                f"{exc}.",
                id="pgqrs.E004",
                hint="Set PGQRS = {...} with the keys listed in the settings reference.",
            )
        ]
    for key in sorted(set(raw) - set(conf.DEFAULTS)):
        messages.append(
            Warning(
                f"Unknown key {key!r} in settings.PGQRS is ignored.",
                id="pgqrs.W001",
                hint="Known keys: " + ", ".join(sorted(conf.DEFAULTS)) + ".",
            )
        )
    for problem in conf.problems():
        messages.append(Error(f"{problem}.", id="pgqrs.E003"))
    values = conf.resolve().values
    messages += _check_heartbeat(values)
    alias = values.get("DATABASE")
    if isinstance(alias, str):
        if alias not in settings.DATABASES:
            messages.append(
                Error(
                    f"PGQRS['DATABASE'] is {alias!r}, which is not in settings.DATABASES.",
                    id="pgqrs.E002",
                    hint="Name an alias defined in DATABASES.",
                )
            )
        elif connections[alias].vendor != "postgresql":
            messages.append(
                Error(
                    f"Database {alias!r} uses the {connections[alias].vendor} backend; pgqrs needs "
                    "PostgreSQL (FOR UPDATE SKIP LOCKED, jsonb, LISTEN/NOTIFY).",
                    id="pgqrs.E001",
                    hint="Use django.db.backends.postgresql for the pgqrs database.",
                )
            )
        if alias in settings.DATABASES:
            messages += _check_routing(alias)
    return messages


def _check_routing(alias: str) -> list[CheckMessage]:
    """The API names its alias itself; the Django admin, ``migrate`` and plain ORM queries
    on the pgqrs models follow the database routers, which must agree with it."""
    from .models import Message

    routed = router.db_for_write(Message)
    if routed != alias:
        problem = f"the database routers send the pgqrs models to {routed!r}"
    elif not router.allow_migrate_model(alias, Message):
        problem = "the database routers do not let `migrate` create the pgqrs tables there"
    else:
        return []
    return [
        Warning(
            f"PGQRS['DATABASE'] is {alias!r}, but {problem}: the admin, `migrate` and ORM "
            "queries on the pgqrs models would miss the queue tables.",
            id="pgqrs.W003",
            hint="Add 'pgqrs_django.routers.PgqrsRouter' to DATABASE_ROUTERS.",
        )
    ]


def _check_heartbeat(values: dict[str, Any]) -> list[CheckMessage]:
    beat, stale = values.get("HEARTBEAT_INTERVAL"), values.get("STALE_WORKER_TIMEOUT")
    if beat is None or stale is None or stale > 2 * beat:
        return []
    return [
        Warning(
            f"STALE_WORKER_TIMEOUT ({stale:g}) is at most twice HEARTBEAT_INTERVAL ({beat:g}): "
            "live workers may be taken for dead and their messages reclaimed.",
            id="pgqrs.W002",
            hint="Keep STALE_WORKER_TIMEOUT at least 3x HEARTBEAT_INTERVAL.",
        )
    ]
