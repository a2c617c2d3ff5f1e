"""A database router that keeps the pgqrs tables on the ``PGQRS["DATABASE"]`` alias.

The API (Producer, Consumer, PgqrsAdmin, the worker, the CLI) always names its alias
explicitly; the router is for everything else that touches the pgqrs models: the Django admin,
``manage.py migrate`` and your own ORM queries on ``pgqrs_django.models``. Install it with::

    DATABASE_ROUTERS = ["pgqrs_django.routers.PgqrsRouter"]
"""

from __future__ import annotations

from typing import Any

from django.db.models import Model

from . import conf

#: The app label of the pgqrs models.
APP_LABEL = "pgqrs"


def _is_pgqrs(model: type[Model] | Model) -> bool:
    return bool(model._meta.app_label == APP_LABEL)


class PgqrsRouter:
    """Route the models of app label ``pgqrs`` to ``PGQRS["DATABASE"]`` (read at use time)
    and migrate them there only; every other model is left to the next router."""

    def db_for_read(self, model: type[Model], **hints: Any) -> str | None:
        return conf.database() if _is_pgqrs(model) else None

    def db_for_write(self, model: type[Model], **hints: Any) -> str | None:
        return conf.database() if _is_pgqrs(model) else None

    def allow_relation(self, obj1: Model, obj2: Model, **hints: Any) -> bool | None:
        # pgqrs rows relate only to each other; a relation leaving pgqrs would cross databases.
        if _is_pgqrs(obj1) and _is_pgqrs(obj2):
            return True
        if _is_pgqrs(obj1) or _is_pgqrs(obj2):
            return obj1._state.db == obj2._state.db
        return None

    def allow_migrate(
        self, db: str, app_label: str, model_name: str | None = None, **hints: Any
    ) -> bool | None:
        return db == conf.database() if app_label == APP_LABEL else None
