"""Producer: puts messages on one queue."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connections
from django.db.models import F
from django.db.models.functions import Greatest, Now

from . import conf, sql
from ._async import async_twin
from .exceptions import DuplicateMessage, InvalidInput, RateLimitExceeded
from .models import Message, Queue
from .queues import QueueRef, unavailable_as_error
from .signals import message_enqueued, send_on_commit
from .validation import check_batch_size, payload_limits, serialize_payload
from .validation import dedupe_key as check_dedupe_key
from .validation import priority as check_priority
from .validation import seconds as check_seconds


class TokenBucket:
    """A thread-safe token bucket: ``rate`` tokens per second, holding at most ``burst``."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        if rate <= 0:
            raise InvalidInput(f"rate limit must be > 0 messages per second, not {rate}")
        self.rate = float(rate)
        self.capacity = float(burst if burst is not None else max(rate, 1.0))
        if self.capacity < 1:
            raise InvalidInput(f"rate limit burst must be >= 1, not {burst}")
        self._tokens = self.capacity
        self._updated = time.monotonic()
        self._lock = threading.Lock()

    def _refill(self, now: float) -> None:
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def try_take(self, n: float = 1.0) -> float:
        """Take ``n`` tokens if available and return 0.0, else return the seconds to wait."""
        with self._lock:
            self._refill(time.monotonic())
            if self._tokens >= n:
                self._tokens -= n
                return 0.0
            return (n - self._tokens) / self.rate

    def take(self, n: float = 1.0, *, block: bool = True) -> None:
        """Take ``n`` tokens, sleeping until they are there (or raising if ``block`` is off).

        A request larger than the bucket is served at the bucket's pace, in bucket-size steps.
        """
        remaining = float(n)
        while remaining > 0:
            step = min(remaining, self.capacity)
            wait = self.try_take(step)
            if wait == 0.0:
                remaining -= step
                continue
            if not block:
                raise RateLimitExceeded(
                    f"rate limit of {self.rate:g} messages/s exceeded (retry in {wait:.3f} s)"
                )
            time.sleep(wait)


class Producer:
    """Enqueues JSON payloads onto one queue.

    Messages are written on the connection of the pgqrs database alias, so inside
    ``transaction.atomic()`` on that alias a message exists only if the transaction commits.

    ``rate_limit`` (messages per second) and ``burst`` default to the ``RATE_LIMIT`` and
    ``RATE_LIMIT_BURST`` settings; with ``block=False`` an exhausted bucket raises
    :class:`~pgqrs_django.exceptions.RateLimitExceeded` instead of waiting.

    When the database cannot be reached every method raises
    :class:`~pgqrs_django.exceptions.DatabaseUnavailable` (also a Django ``OperationalError``);
    the next call reconnects by itself.
    """

    def __init__(
        self,
        queue: Queue | str,
        *,
        rate_limit: float | None = None,
        burst: float | None = None,
        block: bool = True,
        using: str | None = None,
    ) -> None:
        self.using = using or conf.database()
        self._queue = QueueRef(queue, self.using)
        rate = rate_limit if rate_limit is not None else conf.get("RATE_LIMIT")
        size = burst if burst is not None else conf.get("RATE_LIMIT_BURST")
        self.bucket = TokenBucket(rate, size) if rate is not None else None
        self.block = block

    @property
    def queue(self) -> Queue:
        """The queue row, looked up on first use (so constructing needs no database)."""
        return self._queue.get()

    def __repr__(self) -> str:
        return f"<Producer queue={self._queue.name!r}>"

    def _delay(self, delay: float | dt.timedelta | None) -> float:
        return 0.0 if delay is None else check_seconds(delay, "delay")

    def _insert(
        self,
        texts: list[str],
        *,
        priority: int,
        delay: float = 0.0,
        at: dt.datetime | None = None,
        keys: list[str | None] | None = None,
    ) -> list[Message]:
        """Insert serialised payloads in one statement and return the Messages inserted."""
        if self.bucket is not None:
            self.bucket.take(len(texts), block=self.block)
        with unavailable_as_error(self.using):
            queue = self.queue
            with connections[self.using].cursor() as cursor:
                done = sql.insert(
                    cursor,
                    queue.pk,
                    "[" + ",".join(texts) + "]",
                    priority=priority,
                    delay=delay,
                    at=at,
                    dedupe_keys=keys,
                )
        # Rows come back in input order; with dedupe keys some inputs may have been skipped.
        messages = []
        rows = iter(zip(done.ids, done.keys, strict=True))
        row = next(rows, None)
        for index, text in enumerate(texts):
            key = keys[index] if keys is not None else None
            if row is None or row[1] != key:
                continue  # a duplicate dedupe_key: not inserted
            messages.append(
                sql.new_message(
                    self.using,
                    id=row[0],
                    queue_id=queue.pk,
                    payload=json.loads(text),
                    priority=priority,
                    enqueued_at=done.enqueued_at,
                    vt=done.vt,
                    dedupe_key=key,
                )
            )
            row = next(rows, None)
        if messages:
            send_on_commit(
                message_enqueued, Producer, self.using, queue=queue.name, messages=messages
            )
        return messages

    def enqueue(
        self,
        payload: Any,
        *,
        delay: float | dt.timedelta | None = None,
        priority: int = 0,
        dedupe_key: str | None = None,
    ) -> Message:
        """Enqueue one message and return it.

        ``delay`` (seconds or timedelta) keeps it invisible for that long; higher ``priority``
        is claimed first; a ``dedupe_key`` already held by an active message of this queue
        raises :class:`~pgqrs_django.exceptions.DuplicateMessage` (the surrounding transaction
        stays usable).
        """
        text = serialize_payload(payload)
        key = check_dedupe_key(dedupe_key)
        inserted = self._insert(
            [text],
            priority=check_priority(priority),
            delay=self._delay(delay),
            keys=[key] if key else None,
        )
        if not inserted:
            raise DuplicateMessage(self.queue.name, key or "")
        return inserted[0]

    def batch_enqueue(
        self,
        payloads: Iterable[Any],
        *,
        delay: float | dt.timedelta | None = None,
        priority: int = 0,
        dedupe_keys: Sequence[str | None] | None = None,
    ) -> list[Message]:
        """Enqueue many messages in one round trip and return them in input order.

        With ``dedupe_keys`` (one per payload, ``None`` for none), payloads whose key is
        already held by an active message are skipped: the result then has fewer messages.
        """
        limits = payload_limits()
        texts = [serialize_payload(p, limits) for p in payloads]
        check_batch_size(texts)
        keys = None
        if dedupe_keys is not None:
            keys = [check_dedupe_key(k) for k in dedupe_keys]
            if len(keys) != len(texts):
                raise InvalidInput(f"dedupe_keys has {len(keys)} entries for {len(texts)} payloads")
        pri, wait = check_priority(priority), self._delay(delay)
        if not texts:
            return []
        return self._insert(texts, priority=pri, delay=wait, keys=keys)

    def enqueue_delayed(self, payload: Any, delay: float | dt.timedelta, **kwargs: Any) -> Message:
        """Enqueue a message that becomes visible after ``delay`` seconds (or a timedelta)."""
        return self.enqueue(payload, delay=check_seconds(delay, "delay"), **kwargs)

    def enqueue_at(
        self,
        payload: Any,
        when: dt.datetime,
        *,
        priority: int = 0,
        dedupe_key: str | None = None,
    ) -> Message:
        """Enqueue a message that becomes visible at ``when`` (an aware datetime; a time in
        the past means now)."""
        if not isinstance(when, dt.datetime) or when.tzinfo is None:
            raise InvalidInput("enqueue_at needs a timezone-aware datetime")
        text = serialize_payload(payload)
        key = check_dedupe_key(dedupe_key)
        inserted = self._insert(
            [text], priority=check_priority(priority), at=when, keys=[key] if key else None
        )
        if not inserted:
            raise DuplicateMessage(self.queue.name, key or "")
        return inserted[0]

    def extend_visibility(self, msg_id: int | Message, seconds: float | dt.timedelta) -> bool:
        """Keep a message of this queue invisible ``seconds`` longer (a number or a timedelta;
        from its current visibility time, or from now if it is visible). Returns False if
        there is no such active message. Unlike ``Consumer.extend_visibility`` this needs no
        lease."""
        extra = check_seconds(seconds, "seconds")
        pk = msg_id.pk if isinstance(msg_id, Message) else msg_id
        with unavailable_as_error(self.using):
            updated = (
                Message.objects.using(self.using)
                .filter(pk=pk, queue=self.queue)
                .update(vt=Greatest(F("vt"), Now()) + dt.timedelta(seconds=extra))
            )
        return updated == 1

    aenqueue = async_twin(enqueue)
    abatch_enqueue = async_twin(batch_enqueue)
    aenqueue_delayed = async_twin(enqueue_delayed)
    aenqueue_at = async_twin(enqueue_at)
    aextend_visibility = async_twin(extend_visibility)
