"""Consumer: claims messages from one queue and settles them (archive, delete, fail, release)."""

from __future__ import annotations

import datetime as dt
import random
import threading
import traceback
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.db import connections, transaction

from . import conf, sql
from ._async import async_twin
from .exceptions import InvalidInput
from .models import Archive, Message, Queue, Worker
from .queues import QueueRef
from .signals import (
    message_archived,
    message_claimed,
    message_dead,
    message_failed,
    send_on_commit,
)
from .validation import payload_limits, positive_int, serialize_payload
from .validation import seconds as check_seconds

#: Longest error text kept (a traceback of a deep recursion can be megabytes).
MAX_ERROR_CHARS = 65_536
#: Upper bound of one claim, so a typo cannot lock a whole queue in one statement.
MAX_BATCH_SIZE = 10_000


def backoff_delay(attempt: int) -> float:
    """Seconds before retry number ``attempt`` (1-based): exponential, capped, jittered."""
    base = float(conf.get("RETRY_BACKOFF_BASE"))
    cap = float(conf.get("RETRY_BACKOFF_MAX"))
    jitter = float(conf.get("RETRY_JITTER"))
    delay = min(cap, base * 2.0 ** max(0, min(attempt - 1, 62)))
    return max(0.0, delay * (1.0 + random.uniform(-jitter, jitter)))


def error_class(error: BaseException | str) -> str:
    """The dotted path of an exception's class (``builtins.ValueError``), stored with its
    text; "" for an error given as text."""
    if not isinstance(error, BaseException):
        return ""
    return f"{type(error).__module__}.{type(error).__qualname__}"


def error_text(error: BaseException | str) -> str:
    """An error as stored: the full traceback for exceptions, the text otherwise."""
    if isinstance(error, BaseException):
        text = "".join(traceback.format_exception(error))
    else:
        text = str(error)
    text = text.replace("\x00", "\\x00")
    if len(text) > MAX_ERROR_CHARS:
        text = text[: MAX_ERROR_CHARS - 40] + "\n... [truncated]\n" + text[-20:]
    return text


MessageRef = int | Message


class Consumer:
    """Claims messages from one queue under a lease and settles the ones it holds.

    A claimed message stays invisible to other consumers for the lease (``lock_time``, by
    default the queue's ``visibility_timeout``); when the lease runs out it can be claimed
    again. ``archive``, ``delete``, ``fail``, ``release`` and ``extend_visibility`` act only on
    messages this consumer holds: once another consumer has claimed a message (or an operator
    released it) they return False for it.

    Pass a registered :class:`~pgqrs_django.models.Worker` as ``worker`` to record who holds
    each message (the worker runtime does); without one the consumer is anonymous.
    """

    def __init__(
        self, queue: Queue | str, worker: Worker | None = None, *, using: str | None = None
    ) -> None:
        self.using = using or conf.database()
        self._queue = QueueRef(queue, self.using)
        self.worker = worker
        # msg id -> lease token (the read_ct our claim produced).
        self._leases: dict[int, int] = {}
        self._lock = threading.Lock()

    @property
    def queue(self) -> Queue:
        """The queue row, looked up on first use (so constructing needs no database)."""
        return self._queue.get()

    def __repr__(self) -> str:
        return f"<Consumer queue={self._queue.name!r} worker={self.worker_name or None!r}>"

    @property
    def worker_name(self) -> str:
        """The name of the worker recorded as holder ("" for an anonymous consumer)."""
        return self.worker.name if self.worker is not None else ""

    # -- claiming -----------------------------------------------------------------------

    def dequeue(self, lock_time: float | None = None) -> Message | None:
        """Claim the next visible message (highest priority, then oldest), or None."""
        batch = self.dequeue_batch(1, lock_time=lock_time)
        return batch[0] if batch else None

    def dequeue_batch(self, n: int | None = None, lock_time: float | None = None) -> list[Message]:
        """Claim up to ``n`` visible messages (``DEFAULT_BATCH_SIZE`` by default) in one round
        trip. Each stays invisible to others for ``lock_time`` seconds."""
        limit, lock, worker_id = self._claim_args(n, lock_time)
        with connections[self.using].cursor() as cursor:
            rows = sql.claim(cursor, self.queue.pk, limit, lock, worker_id)
        return self._claimed(rows)

    def _claim_args(self, n: int | None, lock_time: float | None) -> tuple[int, float, int | None]:
        limit = positive_int(
            n if n is not None else int(conf.get("DEFAULT_BATCH_SIZE")),
            "batch size",
            maximum=MAX_BATCH_SIZE,
        )
        lock = check_seconds(
            lock_time if lock_time is not None else self.queue.visibility_timeout,
            "lock time",
            allow_zero=False,
        )
        return limit, lock, self.worker.pk if self.worker is not None else None

    def _claimed(self, rows: Sequence[Sequence[Any]]) -> list[Message]:
        messages = sql.rows_to_messages(rows, self.using)
        with self._lock:
            for message in messages:
                self._leases[message.id] = message.read_ct
        if messages:
            send_on_commit(
                message_claimed,
                Consumer,
                self.using,
                queue=self.queue.name,
                messages=messages,
                worker=self.worker,
            )
        return messages

    # -- lease bookkeeping ----------------------------------------------------------------

    def holds(self, msg: MessageRef) -> bool:
        """Whether this consumer claimed ``msg`` and has not settled it (local knowledge; the
        lease may still have been taken over since)."""
        pk = msg.pk if isinstance(msg, Message) else msg
        return pk in self._leases

    def _lease(self, msg: MessageRef) -> tuple[int, int] | None:
        if isinstance(msg, Message):
            return (msg.pk, msg.read_ct)
        if isinstance(msg, bool) or not isinstance(msg, int):
            raise InvalidInput(f"message id must be an int or a Message, not {msg!r}")
        token = self._leases.get(msg)
        return None if token is None else (msg, token)

    def _settle(self, msgs: Sequence[MessageRef], done: set[int]) -> list[bool]:
        """Forget the leases of ``msgs`` (settled or lost) and report which were ``done``."""
        out = []
        with self._lock:
            for msg in msgs:
                pk = msg.pk if isinstance(msg, Message) else msg
                self._leases.pop(pk, None)
                out.append(pk in done)
        return out

    def _on_held(
        self,
        msgs: list[MessageRef],
        statement: Callable[[Any, int, list[tuple[int, int]]], set[int]],
    ) -> list[bool]:
        """Run a holder-only statement on the messages we hold a lease for (one round trip,
        none if we hold none) and forget all of their leases."""
        leases = [lease for lease in map(self._lease, msgs) if lease is not None]
        done: set[int] = set()
        if leases:
            with connections[self.using].cursor() as cursor:
                done = statement(cursor, self.queue.pk, leases)
        return self._settle(msgs, done)

    # -- settling -------------------------------------------------------------------------

    def archive(
        self, msg: MessageRef, result: Any = None, *, duration: float | None = None
    ) -> bool:
        """Move a held message to the archive as succeeded, with an optional JSON ``result``
        and processing ``duration`` (seconds; measured from the claim if omitted)."""
        return self.archive_batch([msg], results=[result], durations=[duration])[0]

    def archive_batch(
        self,
        msgs: Iterable[MessageRef],
        results: Sequence[Any] | None = None,
        durations: Sequence[float | None] | None = None,
    ) -> list[bool]:
        """Archive held messages in one round trip; one bool per message, in order."""
        msgs = list(msgs)
        texts, times = self._archive_values(msgs, results, durations)

        def archive(cursor: Any, queue_id: int, leases: list[tuple[int, int]]) -> set[int]:
            record = sql.ArchiveRecord(
                Archive.Outcome.SUCCEEDED,
                self.worker_name,
                results=[texts[pk] for pk, _ in leases],
                durations=[times[pk] for pk, _ in leases],
            )
            return sql.archive_held(cursor, queue_id, leases, record)

        return self._archived(msgs, self._on_held(msgs, archive))

    def _archived(self, msgs: list[MessageRef], settled: list[bool]) -> list[bool]:
        """Send ``message_archived`` for the messages archived; returns ``settled``."""
        done_ids = [
            m.pk if isinstance(m, Message) else m for m, ok in zip(msgs, settled, strict=True) if ok
        ]
        if done_ids:
            send_on_commit(
                message_archived, Consumer, self.using, queue=self.queue.name, msg_ids=done_ids
            )
        return settled

    def _archive_values(
        self,
        msgs: list[MessageRef],
        results: Sequence[Any] | None,
        durations: Sequence[float | None] | None,
    ) -> tuple[dict[int, str | None], dict[int, float | None]]:
        """Validated JSON results and durations of ``msgs``, by message id."""
        if results is not None and len(results) != len(msgs):
            raise InvalidInput(f"{len(results)} results for {len(msgs)} messages")
        if durations is not None and len(durations) != len(msgs):
            raise InvalidInput(f"{len(durations)} durations for {len(msgs)} messages")
        texts: dict[int, str | None] = {}
        times: dict[int, float | None] = {}
        limits = payload_limits()
        for index, msg in enumerate(msgs):
            pk = msg.pk if isinstance(msg, Message) else msg
            value = results[index] if results is not None else None
            texts[pk] = None if value is None else serialize_payload(value, limits)
            times[pk] = durations[index] if durations is not None else None
        return texts, times

    def archive_and_dequeue_batch(
        self,
        msgs: Iterable[MessageRef],
        results: Sequence[Any] | None = None,
        durations: Sequence[float | None] | None = None,
        *,
        n: int | None = None,
        lock_time: float | None = None,
    ) -> tuple[list[bool], list[Message]]:
        """``archive_batch(msgs, results, durations)`` and ``dequeue_batch(n, lock_time)`` in
        one statement: one round trip and one commit for both (the worker's hot path).
        Returns one bool per archived message, in order, and the claimed messages. The claim
        never returns one of ``msgs``."""
        msgs = list(msgs)
        texts, times = self._archive_values(msgs, results, durations)
        limit, lock, worker_id = self._claim_args(n, lock_time)
        leases = [lease for lease in map(self._lease, msgs) if lease is not None]
        with connections[self.using].cursor() as cursor:
            done, rows = sql.archive_and_claim(
                cursor,
                self.queue.pk,
                leases,
                worker_name=self.worker_name,
                results=[texts[pk] for pk, _ in leases],
                durations=[times[pk] for pk, _ in leases],
                limit=limit,
                lock_seconds=lock,
                worker_id=worker_id,
            )
        return self._archived(msgs, self._settle(msgs, done)), self._claimed(rows)

    def delete(self, msg: MessageRef) -> bool:
        """Delete a held message without archiving it."""
        return self.delete_batch([msg])[0]

    def delete_batch(self, msgs: Iterable[MessageRef]) -> list[bool]:
        """Delete held messages in one round trip; one bool per message, in order."""
        return self._on_held(list(msgs), sql.delete_held)

    def release(self, msg: MessageRef) -> bool:
        """Give a held message back unprocessed: claimable again at once."""
        return self.release_batch([msg])[0]

    def release_batch(self, msgs: Iterable[MessageRef]) -> list[bool]:
        """Release held messages in one round trip; one bool per message, in order."""
        return self._on_held(list(msgs), sql.release_held)

    def extend_visibility(self, msg: MessageRef, seconds: float | dt.timedelta) -> bool:
        """Extend the lease of a held message by ``seconds`` (a number or a timedelta; from
        its current end, or from now if it has run out). False if the lease was lost."""
        return self.extend_visibility_batch([msg], seconds)[0]

    def extend_visibility_batch(
        self, msgs: Iterable[MessageRef], seconds: float | dt.timedelta
    ) -> list[bool]:
        """Extend the leases of held messages by ``seconds`` in one round trip; one bool per
        message, in order. Messages whose lease was lost are forgotten (False)."""
        extra = check_seconds(seconds, "seconds", allow_zero=False)
        msgs = list(msgs)
        leases = [lease for lease in map(self._lease, msgs) if lease is not None]
        done: set[int] = set()
        if leases:
            with connections[self.using].cursor() as cursor:
                done = sql.extend_held(cursor, self.queue.pk, leases, extra)
        out = []
        for msg in msgs:
            pk = msg.pk if isinstance(msg, Message) else msg
            out.append(pk in done)
        lost = [msg for msg, ok in zip(msgs, out, strict=True) if not ok]
        if lost:
            self._settle(lost, done)
        return out

    def fail(self, msg: MessageRef, error: BaseException | str, *, retry: bool = True) -> bool:
        """Record a failed delivery of a held message.

        With deliveries left (``read_ct < max_attempts``) the message is retried after an
        exponential backoff with jitter; otherwise it is dead-lettered: moved to the queue's
        dead-letter queue if it has one, else archived with outcome ``dead``. With
        ``retry=False`` it is archived at once with outcome ``failed``. ``error`` is stored:
        an exception as its traceback and its class path, text as given: on the message
        (``last_error``, ``last_error_class``) while it waits for its retry or sits in the
        dead-letter queue, in the archive (``error``, ``error_class``) once it leaves. False
        if the lease was lost.
        """
        lease = self._lease(msg)
        if lease is None:
            return False
        msg_id, token = lease
        text, kind = error_text(error), error_class(error)
        retry_in: float | None = None
        dead_letter_queue_id: int | None = None
        with transaction.atomic(using=self.using), connections[self.using].cursor() as cursor:
            locked = sql.lock_for_fail(cursor, self.queue.pk, msg_id, token)
            if locked is not None:
                read_ct, max_attempts, dead_letter_queue_id = locked
                final: str | None = None  # the archive outcome, when the message leaves
                if not retry:
                    final = Archive.Outcome.FAILED
                elif read_ct < max_attempts:
                    retry_in = backoff_delay(read_ct)
                    sql.retry_later(cursor, msg_id, retry_in, text, kind)
                elif dead_letter_queue_id is not None:
                    sql.move_to_dead_letter_queue(cursor, msg_id, dead_letter_queue_id, text, kind)
                else:
                    final = Archive.Outcome.DEAD
                if final is not None:
                    record = sql.ArchiveRecord(
                        final, self.worker_name, error=text, error_class=kind
                    )
                    sql.archive_held(cursor, self.queue.pk, [lease], record)
        if locked is not None:
            self._send_failure(msg_id, text, retry, retry_in, dead_letter_queue_id)
        self._settle([msg], set())
        return locked is not None

    def _send_failure(
        self, msg_id: int, text: str, retry: bool, retry_in: float | None, dlq_id: int | None
    ) -> None:
        name = self.queue.name
        send_on_commit(
            message_failed,
            Consumer,
            self.using,
            queue=name,
            msg_id=msg_id,
            error=text,
            retry_in=retry_in,
        )
        if retry and retry_in is None and message_dead.has_listeners(Consumer):
            dlq = None
            if dlq_id is not None:
                dlq = Queue.objects.using(self.using).values_list("name", flat=True).get(pk=dlq_id)
            send_on_commit(
                message_dead,
                Consumer,
                self.using,
                queue=name,
                msg_id=msg_id,
                error=text,
                dead_letter_queue=dlq,
            )

    adequeue = async_twin(dequeue)
    adequeue_batch = async_twin(dequeue_batch)
    aarchive = async_twin(archive)
    aarchive_batch = async_twin(archive_batch)
    aarchive_and_dequeue_batch = async_twin(archive_and_dequeue_batch)
    adelete = async_twin(delete)
    adelete_batch = async_twin(delete_batch)
    arelease = async_twin(release)
    arelease_batch = async_twin(release_batch)
    aextend_visibility = async_twin(extend_visibility)
    aextend_visibility_batch = async_twin(extend_visibility_batch)
    afail = async_twin(fail)
