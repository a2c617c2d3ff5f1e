"""The database calls of the worker's main thread: its own connection, set up once per
(re)connection, and every call retried with backoff while the database is away."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from django.db import Error as DjangoDatabaseError
from django.db import InterfaceError, OperationalError, connections

from ..exceptions import one_line

logger = logging.getLogger(__name__)

#: Backoff between attempts while the database is unreachable (seconds).
DB_RETRY_MIN, DB_RETRY_MAX = 0.1, 5.0


class DatabaseRetry:
    """Runs the main thread's database calls on the ``using`` connection.

    A call that fails with a database error is logged (once per outage), a broken connection
    is dropped, and no call runs before the backoff (0.1 s, doubling up to 5 s) has passed:
    :meth:`call` then answers ``(False, None)`` and each caller keeps its work for the next
    attempt. ``on_recovery`` runs when the database answers again.
    """

    def __init__(self, using: str, *, async_commit: bool, on_recovery: Callable[[], None]):
        self.using = using
        self.async_commit = async_commit
        self.on_recovery = on_recovery
        #: Monotonic time before which no call is tried.
        self.retry_at = 0.0
        self._backoff = DB_RETRY_MIN
        self._down_since: float | None = None
        self._session: Any = None

    def ready(self) -> bool:
        """Whether a call may be tried now (no backoff pending)."""
        return time.monotonic() >= self.retry_at

    def try_now(self) -> None:
        """Let the next call through whatever the backoff says (one last try on exit)."""
        self.retry_at = 0.0

    def call(self, what: str, call: Callable[..., Any], *args: Any) -> tuple[bool, Any]:
        """``(True, call(*args))``, or ``(False, None)`` after a database error or while
        backing off; ``what`` names the call in the log."""
        if not self.ready():
            return False, None
        try:
            self.prepare_session()
            value = call(*args)
        except DjangoDatabaseError as exc:  # DatabaseError and InterfaceError
            now = time.monotonic()
            if self._down_since is None:
                self._down_since = now
                logger.warning(
                    "database error while %s: %s; retrying", what, one_line(exc, with_type=True)
                )
            else:
                logger.debug("database still failing (%s): %s", what, one_line(exc, with_type=True))
            if isinstance(exc, OperationalError | InterfaceError):
                self.close()
            self.retry_at = now + self._backoff
            self._backoff = min(DB_RETRY_MAX, self._backoff * 2)
            return False, None
        if self._down_since is not None:
            logger.warning(
                "database reachable again after %.1fs", time.monotonic() - self._down_since
            )
            self._down_since = None
            self._backoff = DB_RETRY_MIN
            self.on_recovery()
        return True, value

    def prepare_session(self) -> None:
        """Session settings of the worker's own connection, set once per (re)connection.

        The claim must walk the claim index in order and stop after ``batch_size`` rows.
        Right after a burst of inserts the table statistics are stale, and the planner may
        then pick a bitmap scan that sorts every ready row on each claim (a cost that grows
        with the backlog). This connection runs only pgqrs statements, none of which needs
        a bitmap scan.

        With ``async_commit``, its commits do not wait for the WAL flush
        (``synchronous_commit = off``): a PostgreSQL crash may then forget the last fraction
        of a second of claims and acknowledgements, and those jobs run again. Enqueues, on
        other connections, keep their durability.
        """
        wrapper = connections[self.using]
        if wrapper.connection is None or wrapper.connection is not self._session:
            wrapper.ensure_connection()
            with wrapper.cursor() as cursor:
                cursor.execute("SET enable_bitmapscan = off")
                if self.async_commit:
                    cursor.execute("SET synchronous_commit = off")
            self._session = wrapper.connection

    def close(self) -> None:
        """Close the connection, unless it runs inside a caller's transaction."""
        wrapper = connections[self.using]
        if wrapper.in_atomic_block:  # run inside a caller's transaction: not ours to close
            return
        with contextlib.suppress(DjangoDatabaseError):
            wrapper.close()
