"""Rows of the raw statements as Message instances, loaded fast.

Statements that return messages list their columns in :data:`MESSAGE_COLUMNS` order, the
order of ``Message._meta.concrete_fields``, so a row maps straight onto ``Message.from_db``.
A claim of many messages spends most of its client time turning rows into objects: parsing
timestamps and running ``Model.__init__``; the helpers here cut both without changing a value.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Sequence
from typing import Any

from django.db.backends.postgresql.psycopg_any import BaseTzLoader
from django.db.backends.utils import CursorWrapper
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init
from psycopg.pq import Format

from ..models import Message

#: Column order of ``Message._meta.concrete_fields``, so rows map straight onto ``from_db``.
MESSAGE_COLUMNS = (
    "id",
    "queue_id",
    "payload",
    "priority",
    "enqueued_at",
    "vt",
    "read_ct",
    "dequeued_at",
    "claimed_at",
    "consumer_id",
    "dedupe_key",
    "last_error",
    "last_error_class",
)
_PAYLOAD_INDEX = MESSAGE_COLUMNS.index("payload")
_FIELD_NAMES = [f.attname for f in Message._meta.concrete_fields]


@functools.cache
def _iso_timestamptz_loader(base: type[Any]) -> type[Any]:
    class IsoTimestamptzLoader(base):
        """Django's timestamptz loader, with PostgreSQL's ISO output parsed by the C
        ``datetime.fromisoformat`` (several times faster than psycopg's Python parser that
        Django's loader extends); anything else goes to Django's loader."""

        def load(self, data: Any) -> Any:
            try:
                value = dt.datetime.fromisoformat(bytes(data).decode())
            except ValueError:
                return super().load(data)
            # What Django's loader does: the text is in the session time zone, which
            # Django keeps equal to the loader's.
            return value.replace(tzinfo=self.timezone)

    return IsoTimestamptzLoader


def fast_timestamps(cursor: CursorWrapper) -> None:
    """Load this cursor's timestamptz columns faster (same values as Django's loader).

    Statements returning many messages spend most of their client time parsing their four
    timestamps; this cursor-local loader cuts that several-fold."""
    raw = cursor.cursor
    adapters = getattr(raw, "adapters", None)
    if adapters is None:  # not psycopg 3
        return
    oid = adapters.types["timestamptz"].oid
    base = adapters.get_loader(oid, Format.TEXT)
    if base is not None and issubclass(base, BaseTzLoader):
        adapters.register_loader(oid, _iso_timestamptz_loader(base))


def rows_to_messages(rows: Sequence[Sequence[Any]], alias: str) -> list[Message]:
    """Build Message instances from rows in ``MESSAGE_COLUMNS`` order."""
    messages = []
    for row in rows:
        values = list(row)
        payload = values[_PAYLOAD_INDEX]
        # Django registers a text loader for jsonb; JSONField decodes it the same way.
        if isinstance(payload, str):
            values[_PAYLOAD_INDEX] = json.loads(payload)
        messages.append(_message(alias, values))
    return messages


def _message(alias: str, values: list[Any]) -> Message:
    """``Message.from_db(alias, fields, values)``, without the per-field descriptor calls of
    ``Model.__init__`` (a third of a claim's client time) when no init signal receiver
    could notice the difference."""
    if pre_init.has_listeners(Message) or post_init.has_listeners(Message):
        return Message.from_db(alias, _FIELD_NAMES, values)
    message = Message.__new__(Message)
    message.__dict__.update(zip(_FIELD_NAMES, values, strict=True))
    state = message._state = ModelState()
    state.adding = False
    state.db = alias
    return message


def new_message(alias: str, **values: Any) -> Message:
    """A Message instance for a row just inserted (unset columns take their defaults)."""
    defaults = {
        "read_ct": 0,
        "dequeued_at": None,
        "claimed_at": None,
        "consumer_id": None,
        "dedupe_key": None,
        "last_error": "",
        "last_error_class": "",
    }
    merged = {**defaults, **values}
    return _message(alias, [merged[name] for name in _FIELD_NAMES])
