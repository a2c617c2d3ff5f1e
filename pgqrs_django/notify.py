"""LISTEN/NOTIFY: how idle workers hear about new messages without polling.

Migration ``0002_notify_trigger`` makes PostgreSQL send ``NOTIFY pgqrs, '<queue id>'`` when
messages are inserted, when a lease ends early (release, retry, reclaim, dead-lettering) and
when a queue is resumed. NOTIFY is transactional: uncommitted enqueues wake nobody.

A :class:`Listener` holds one dedicated psycopg connection (built from the Django connection
settings of the pgqrs database alias, in autocommit mode) in a background thread, and calls
``on_notify(queue_id)`` for every notification. When the connection breaks it calls
``on_notify(None)`` ("you may have missed something") and reconnects with backoff.

Behind PgBouncer in transaction pooling mode LISTEN does not work: run workers with
``--no-listen`` (polling only). A listener finds out by itself: after its first LISTEN it
sends a probe notification from a second connection, and when the probe does not come back
it logs an error saying so and stops listening (the worker keeps polling).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
from django.db import connections

from .exceptions import one_line

logger = logging.getLogger(__name__)

#: The channel the triggers notify on; the payload is the queue id.
CHANNEL = "pgqrs"
#: How often the listening thread checks whether it was asked to stop (seconds).
STOP_CHECK_INTERVAL = 0.5
#: Reconnection backoff bounds (seconds).
RECONNECT_MIN, RECONNECT_MAX = 0.1, 5.0
#: Payload prefix of the probe a listener sends itself (other listeners ignore it), and how
#: long it waits for the probe to come back before deciding LISTEN does not work.
PROBE_PREFIX = "probe:"
PROBE_TIMEOUT = 10.0
PROBE = "SELECT pg_notify(%s, %s)"

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
        self._thread = threading.Thread(target=self._run, name="pgqrs-listen", daemon=True)
        self._probed = False

    def start(self) -> None:
        self._thread.start()

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
                    conn.execute(f"LISTEN {CHANNEL}")
                    if not self._probed:
                        heard = self._probe(conn)
                        if heard is None:  # asked to stop meanwhile
                            break
                        if not heard:
                            logger.error(
                                "LISTEN does not work on this connection (a probe "
                                "notification never came back within %gs: PgBouncer in "
                                "transaction pooling mode?); polling only from now on. Run "
                                "pgqrs_worker --no-listen, or give the worker a direct "
                                "connection to PostgreSQL",
                                PROBE_TIMEOUT,
                            )
                            return
                        self._probed = True
                    if failing:
                        logger.warning("LISTEN connection restored")
                    failing, delay = False, RECONNECT_MIN
                    # Anything sent while we were not listening is lost: tell the worker.
                    self.on_notify(None)
                    self._listen(conn)
            except Exception as exc:  # psycopg errors, or a bug in on_notify: keep listening
                if self._stop.is_set():
                    break
                if not isinstance(exc, psycopg.Error):
                    logger.exception("LISTEN thread error; reconnecting")
                elif not failing:
                    logger.warning("LISTEN connection lost (%s); reconnecting", one_line(exc))
                failing = True
                self._stop.wait(delay)
                delay = min(RECONNECT_MAX, delay * 2)

    def _probe(self, conn: psycopg.Connection[Any]) -> bool | None:
        """Notify ourselves from a second connection and wait for it: True if it came back,
        False if not within PROBE_TIMEOUT, None if asked to stop meanwhile. Notifications
        that arrive in the meantime are delivered as usual."""
        token = PROBE_PREFIX + secrets.token_hex(8)
        with psycopg.connect(**self.params, autocommit=True) as other:
            other.execute(PROBE, [CHANNEL, token])
        deadline = time.monotonic() + PROBE_TIMEOUT
        while (left := deadline - time.monotonic()) > 0:
            if self._stop.is_set():
                return None
            for notice in conn.notifies(timeout=min(left, STOP_CHECK_INTERVAL)):
                if notice.payload == token:
                    return True
                self._deliver(notice.payload)
        return False

    def _deliver(self, payload: str) -> None:
        if payload.startswith(PROBE_PREFIX):  # another listener's probe
            return
        try:
            queue_id: int | None = int(payload)
        except ValueError:
            queue_id = None
        self.on_notify(queue_id)

    def _listen(self, conn: psycopg.Connection[Any]) -> None:
        while not self._stop.is_set():
            for notice in conn.notifies(timeout=STOP_CHECK_INTERVAL):
                self._deliver(notice.payload)
                if self._stop.is_set():
                    return
