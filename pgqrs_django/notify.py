"""LISTEN/NOTIFY: how idle workers hear about new messages without polling.

Migration ``0002_notify_trigger`` makes PostgreSQL send ``NOTIFY pgqrs, '<queue id>'`` when
messages are inserted, when a lease ends early (release, retry, reclaim, dead-lettering) and
when a queue is resumed. NOTIFY is transactional: uncommitted enqueues wake nobody.

A :class:`Listener` holds one dedicated psycopg connection (built from the Django connection
settings of the pgqrs database alias, in autocommit mode) in a background thread, and calls
``on_notify(queue_id)`` for every notification. When the connection breaks it calls
``on_notify(None)`` ("you may have missed something") and reconnects with backoff.

Behind PgBouncer in transaction pooling mode LISTEN does not work: run workers with
``--no-listen`` (polling only).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import psycopg
from django.db import connections

logger = logging.getLogger(__name__)

#: The channel the triggers notify on; the payload is the queue id.
CHANNEL = "pgqrs"
#: How often the listening thread checks whether it was asked to stop (seconds).
STOP_CHECK_INTERVAL = 0.5
#: Reconnection backoff bounds (seconds).
RECONNECT_MIN, RECONNECT_MAX = 0.1, 5.0

# Django-only keys of BaseDatabaseWrapper.get_connection_params() that psycopg.connect
# must not see, or must see differently.
_DJANGO_ONLY = ("cursor_factory", "context", "prepare_threshold")


def connection_params(alias: str) -> dict[str, Any]:
    """psycopg.connect() keyword arguments for the database of Django alias ``alias``."""
    wrapper = connections[alias]
    if wrapper.vendor != "postgresql":
        raise ValueError(f"database {alias!r} is {wrapper.vendor}, LISTEN needs PostgreSQL")
    params = dict(wrapper.get_connection_params())
    for key in _DJANGO_ONLY:
        params.pop(key, None)
    # Notice a dead server even when no notification is due; never hang on connecting.
    params.setdefault("connect_timeout", 10)
    params.setdefault("keepalives", 1)
    params.setdefault("keepalives_idle", 30)
    params.setdefault("keepalives_interval", 10)
    params.setdefault("keepalives_count", 3)
    return params


class Listener:
    """LISTENs on :data:`CHANNEL` in a daemon thread and reports notifications.

    ``on_notify`` is called from the listening thread with the queue id of each notification,
    or None after (re)connecting, when notifications may have been missed. It must be quick
    and thread-safe (the worker puts an event on a queue).
    """

    def __init__(
        self,
        alias: str,
        on_notify: Callable[[int | None], None],
        *,
        application_name: str = "pgqrs-listen",
    ) -> None:
        self.params = connection_params(alias)
        self.params["application_name"] = application_name[:63]
        self.on_notify = on_notify
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pgqrs-listen", daemon=True)
        self._conn: psycopg.Connection[Any] | None = None

    @property
    def connected(self) -> bool:
        """Whether the LISTEN connection is up right now."""
        return self._connected.is_set()

    def start(self) -> None:
        self._thread.start()

    def wait_connected(self, timeout: float) -> bool:
        """Block until the first LISTEN is in place (or ``timeout`` passes)."""
        return self._connected.wait(timeout)

    def stop(self, timeout: float = 2.0) -> None:
        """Ask the thread to stop and wait for it (at most ``timeout`` seconds)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        delay = RECONNECT_MIN
        failing = False
        while not self._stop.is_set():
            try:
                with psycopg.connect(**self.params, autocommit=True) as conn:
                    self._conn = conn
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._connected.set()
                    if failing:
                        logger.warning("LISTEN connection restored")
                    failing, delay = False, RECONNECT_MIN
                    # Anything sent while we were not listening is lost: tell the worker.
                    self.on_notify(None)
                    self._listen(conn)
            except Exception as exc:  # psycopg errors, or a bug in on_notify: keep listening
                self._connected.clear()
                if self._stop.is_set():
                    break
                if not isinstance(exc, psycopg.Error):
                    logger.exception("LISTEN thread error; reconnecting")
                elif not failing:
                    logger.warning("LISTEN connection lost (%s); reconnecting", _one_line(exc))
                failing = True
                self._stop.wait(delay)
                delay = min(RECONNECT_MAX, delay * 2)
            finally:
                self._conn = None
                self._connected.clear()

    def _listen(self, conn: psycopg.Connection[Any]) -> None:
        while not self._stop.is_set():
            for notice in conn.notifies(timeout=STOP_CHECK_INTERVAL):
                try:
                    queue_id: int | None = int(notice.payload)
                except ValueError:
                    queue_id = None
                self.on_notify(queue_id)
                if self._stop.is_set():
                    return


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
