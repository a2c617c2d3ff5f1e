"""PgqrsAdmin: installation, queues, metrics, workers and operator actions on messages.

The metric dataclasses and their queries live in :mod:`pgqrs_django.stats`, the table and
index checks of ``verify()`` in :mod:`pgqrs_django.schema`; both are importable from here
too, where the API has always exported them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import socket
import uuid
from collections.abc import Iterable
from typing import Any

from django.core.management import call_command
from django.db import IntegrityError, connections, transaction
from django.db.models.functions import Now

from . import conf, schema, sql, stats
from ._async import async_twin
from .exceptions import (
    DuplicateMessage,
    InvalidInput,
    MessageNotFound,
    QueueAlreadyExists,
    WorkerNotFound,
)
from .models import Archive, Message, Queue, Worker
from .queues import resolve
from .schema import VerifyReport
from .stats import QueueMetrics, SystemStats, Throughput
from .validation import positive_int, seconds, validate_queue_name

__all__ = [
    "HealthReport",
    "PgqrsAdmin",
    "QueueMetrics",
    "ReclaimResult",
    "SystemStats",
    "Throughput",
    "VerifyReport",
]


@dataclasses.dataclass(frozen=True)
class HealthReport:
    """What ``health()`` found: ``ok`` is True when no worker is stale and every queue with
    ready messages (paused ones aside) is served by a ready, non-stale worker."""

    #: Names of running workers whose heartbeat is older than the stale timeout.
    stale_workers: list[str]
    #: Names of unpaused queues with ready messages and no ready, non-stale worker.
    unserved_queues: list[str]
    #: Running (ready or suspended) workers, stale ones included.
    running_workers: int

    @property
    def ok(self) -> bool:
        return not self.stale_workers and not self.unserved_queues

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, **dataclasses.asdict(self)}


@dataclasses.dataclass(frozen=True)
class ReclaimResult:
    workers: int
    messages: int

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class PgqrsAdmin:
    """Operator API: install/verify, queues, metrics, workers, and actions on any message."""

    def __init__(self, using: str | None = None) -> None:
        self.using = using or conf.database()

    def __repr__(self) -> str:
        return f"<PgqrsAdmin using={self.using!r}>"

    # -- installation -------------------------------------------------------------------

    def install(self) -> None:
        """Create the pgqrs tables (apply the app's migrations on the pgqrs database)."""
        call_command("migrate", "pgqrs", database=self.using, verbosity=0, interactive=False)

    def uninstall(self) -> None:
        """Drop the pgqrs tables and every message in them (unapply the app's migrations)."""
        call_command(
            "migrate", "pgqrs", "zero", database=self.using, verbosity=0, interactive=False
        )

    def verify(self) -> VerifyReport:
        """Check the database is PostgreSQL, the migrations are applied, and every pgqrs
        table and index the models declare exists. Returns a report; never raises for a
        problem it can describe."""
        return schema.verify(self.using)

    # -- queues ---------------------------------------------------------------------------

    def create_queue(
        self,
        name: str,
        *,
        visibility_timeout: float | None = None,
        max_attempts: int | None = None,
        dead_letter_queue: str | None = None,
    ) -> Queue:
        """Create a queue. Raises QueueAlreadyExists if the name is taken."""
        validate_queue_name(name)
        fields: dict[str, Any] = {"name": name}
        if visibility_timeout is not None:
            fields["visibility_timeout"] = seconds(
                visibility_timeout, "visibility timeout", allow_zero=False
            )
        if max_attempts is not None:
            fields["max_attempts"] = positive_int(max_attempts, "max attempts", maximum=1_000_000)
        if dead_letter_queue is not None:
            if dead_letter_queue == name:
                raise InvalidInput("a queue cannot be its own dead-letter queue")
            fields["dead_letter_queue"] = resolve(dead_letter_queue, self.using)
        try:
            with transaction.atomic(using=self.using):
                return Queue.objects.using(self.using).create(**fields)
        except IntegrityError:
            if Queue.objects.using(self.using).filter(name=name).exists():
                raise QueueAlreadyExists(name) from None
            raise

    def get_queue(self, name: str) -> Queue:
        """The queue with this name; raises QueueNotFound."""
        return resolve(name, self.using)

    def list_queues(self) -> list[Queue]:
        return list(Queue.objects.using(self.using).select_related("dead_letter_queue"))

    def delete_queue(self, name: str) -> dict[str, int]:
        """Delete a queue with its active and archived messages. Returns what was deleted."""
        queue = resolve(name, self.using)
        with transaction.atomic(using=self.using):
            messages = Message.objects.using(self.using).filter(queue=queue).delete()[0]
            archived = Archive.objects.using(self.using).filter(queue=queue).delete()[0]
            queue.delete(using=self.using)
        return {"messages": messages, "archived": archived}

    def purge_queue(self, name: str) -> int:
        """Delete every active message of a queue (the archive is kept). Returns the count."""
        queue = resolve(name, self.using)
        return Message.objects.using(self.using).filter(queue=queue).delete()[0]

    def purge_archive(self, name: str, older_than: float | dt.timedelta | None = None) -> int:
        """Delete archived messages of a queue, all or those archived over ``older_than``
        (seconds or timedelta) ago. Returns the count."""
        queue = resolve(name, self.using)
        rows = Archive.objects.using(self.using).filter(queue=queue)
        if older_than is not None:
            rows = rows.older_than(dt.timedelta(seconds=seconds(older_than, "older than")))
        return rows.delete()[0]

    def set_paused(self, name: str, paused: bool) -> Queue:
        """Pause (no message is handed out) or resume a queue."""
        queue = resolve(name, self.using)
        Queue.objects.using(self.using).filter(pk=queue.pk).update(paused=paused)
        queue.paused = paused
        return queue

    def pause_queue(self, name: str) -> Queue:
        return self.set_paused(name, True)

    def resume_queue(self, name: str) -> Queue:
        return self.set_paused(name, False)

    # -- metrics --------------------------------------------------------------------------

    def queue_metrics(self, name: str) -> QueueMetrics:
        """Counts for one queue: ready, delayed, in flight, archived by outcome, oldest age."""
        return stats.queue_metrics([resolve(name, self.using)], self.using)[0]

    def all_queues_metrics(self) -> list[QueueMetrics]:
        """Metrics for every queue, by name."""
        queues = list(Queue.objects.using(self.using).order_by("name"))
        return stats.queue_metrics(queues, self.using)

    def throughput(self, window: float = 3600.0, buckets: int = 60) -> Throughput:
        """Messages archived (and among them failed or dead) over the last ``window``
        seconds, in ``buckets`` equal buckets, plus the total per queue: one query."""
        return stats.throughput(self.using, window, buckets)

    def system_stats(self) -> SystemStats:
        """Totals across all queues, worker counts by status and table sizes in bytes."""
        return stats.system_stats(self.using)

    # -- messages (operator actions: no lease needed) -------------------------------------

    def get_message(self, queue: str, msg_id: int, *, archived: bool = False) -> Message | Archive:
        """One active (or, with ``archived``, archived) message of a queue."""
        q = resolve(queue, self.using)
        model: type[Message] | type[Archive] = Archive if archived else Message
        try:
            return model.objects.using(self.using).get(pk=msg_id, queue=q)
        except model.DoesNotExist:
            raise MessageNotFound(q.name, msg_id, archived=archived) from None

    def list_archive(self, queue: str, *, limit: int = 50, offset: int = 0) -> list[Archive]:
        """Archived messages of a queue, most recently archived first (``limit`` rows, at most
        10,000, after skipping ``offset``)."""
        q = resolve(queue, self.using)
        count = positive_int(limit, "limit", maximum=10_000)
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise InvalidInput(f"offset must be a whole number >= 0, not {offset!r}")
        return list(Archive.objects.using(self.using).filter(queue=q)[offset : offset + count])

    def delete_messages(self, queue: str, ids: Iterable[int]) -> int:
        """Delete active messages of a queue, held or not. Returns how many were deleted."""
        q = resolve(queue, self.using)
        return Message.objects.using(self.using).filter(queue=q, pk__in=list(ids)).delete()[0]

    def release_messages(self, queue: str, ids: Iterable[int] | None = None) -> int:
        """Make leased messages claimable at once (all leased ones if ``ids`` is None);
        their holders lose the lease. Returns how many were released."""
        q = resolve(queue, self.using)
        rows = Message.objects.using(self.using).filter(queue=q, claimed_at__isnull=False)
        if ids is not None:
            rows = rows.filter(pk__in=list(ids))
        return rows.update(vt=Now(), claimed_at=None, consumer=None)

    def cancel_messages(self, queue: str, ids: Iterable[int], reason: str = "") -> int:
        """Archive active messages with outcome ``cancelled`` (held ones too: their holders
        lose the lease). Returns how many were cancelled."""
        q = resolve(queue, self.using)
        with connections[self.using].cursor() as cursor:
            return len(sql.archive_any(cursor, q.pk, list(ids), Archive.Outcome.CANCELLED, reason))

    def replay_dead(self, queue: str, msg_id: int) -> Message:
        """Put an archived ``dead`` or ``failed`` message back in its queue under the same id,
        ready now with its delivery count reset. Raises MessageNotFound, or DuplicateMessage
        when an active message already holds its dedupe_key."""
        q = resolve(queue, self.using)
        try:
            with transaction.atomic(using=self.using), connections[self.using].cursor() as cursor:
                rows = sql.replay(
                    cursor, q.pk, msg_id, [Archive.Outcome.DEAD, Archive.Outcome.FAILED]
                )
        except IntegrityError:
            key = (
                Archive.objects.using(self.using)
                .filter(pk=msg_id)
                .values_list("dedupe_key", flat=True)
                .first()
            )
            raise DuplicateMessage(q.name, key or "") from None
        if not rows:
            raise MessageNotFound(q.name, msg_id, archived=True)
        return sql.rows_to_messages(rows, self.using)[0]

    # -- workers --------------------------------------------------------------------------

    def register_worker(self, queues: Iterable[Queue | str], *, name: str | None = None) -> Worker:
        """Register this process as a worker serving ``queues`` (status ``ready``)."""
        rows = [resolve(q, self.using) for q in queues]
        host = socket.gethostname()
        pid = os.getpid()
        worker_name = name or f"{host}-{pid}-{uuid.uuid4().hex[:6]}"
        with transaction.atomic(using=self.using):
            worker = Worker.objects.using(self.using).create(
                name=worker_name,
                hostname=host[:255],
                pid=pid,
            )
            worker.queues.set(rows)
        return worker

    def heartbeat(self, worker: Worker) -> Worker:
        """Record that ``worker`` is alive; returns its row as operators left it (status,
        shutdown request). Raises WorkerNotFound if the row was purged."""
        updated = Worker.objects.using(self.using).filter(pk=worker.pk).update(heartbeat_at=Now())
        if not updated:
            raise WorkerNotFound(worker.pk)
        return Worker.objects.using(self.using).get(pk=worker.pk)

    def stop_worker(self, worker: Worker) -> int:
        """Mark ``worker`` stopped and release every message it still holds. Returns the
        number released."""
        with transaction.atomic(using=self.using):
            released = (
                Message.objects.using(self.using)
                .filter(consumer=worker)
                .update(vt=Now(), claimed_at=None, consumer=None)
            )
            Worker.objects.using(self.using).filter(pk=worker.pk).update(
                status=Worker.Status.STOPPED, stopped_at=Now()
            )
        return released

    def list_workers(self, queue: str | None = None, *, running_only: bool = False) -> list[Worker]:
        rows = Worker.objects.using(self.using).prefetch_related("queues")
        if queue is not None:
            rows = rows.filter(queues=resolve(queue, self.using))
        if running_only:
            rows = rows.running()
        return list(rows)

    def get_worker(self, ref: int | str) -> Worker:
        """A worker by id or name; raises WorkerNotFound."""
        rows = Worker.objects.using(self.using)
        found = rows.filter(pk=ref) if isinstance(ref, int) else rows.filter(name=ref)
        worker = found.first()
        if worker is None:
            raise WorkerNotFound(ref)
        return worker

    def _set_worker(self, ref: int | str, **fields: Any) -> Worker:
        worker = self.get_worker(ref)
        if worker.status == Worker.Status.STOPPED:
            raise InvalidInput(f"worker {worker.name!r} is stopped")
        Worker.objects.using(self.using).filter(pk=worker.pk).update(**fields)
        worker.refresh_from_db(using=self.using)
        return worker

    def suspend_worker(self, ref: int | str) -> Worker:
        """Ask a worker to stop claiming (it keeps heartbeating and finishes what it holds)."""
        return self._set_worker(ref, status=Worker.Status.SUSPENDED)

    def resume_worker(self, ref: int | str) -> Worker:
        """Let a suspended worker claim again."""
        return self._set_worker(ref, status=Worker.Status.READY)

    def shutdown_worker(self, ref: int | str) -> Worker:
        """Ask a worker to stop gracefully at its next poll."""
        return self._set_worker(ref, shutdown_requested=True)

    def stale_workers(self, timeout: float | None = None) -> list[Worker]:
        """Running workers whose heartbeat is older than ``timeout`` seconds
        (``STALE_WORKER_TIMEOUT`` by default), judged by the database clock."""
        if timeout is not None:
            timeout = seconds(timeout, "timeout")
        return list(Worker.objects.using(self.using).stale(timeout).prefetch_related("queues"))

    def health(self, timeout: float | None = None) -> HealthReport:
        """Stale workers, and unpaused queues with ready messages that no ready, non-stale
        worker serves (see :class:`HealthReport`)."""
        stale = self.stale_workers(timeout)
        stale_ids = [w.pk for w in stale]
        served = set(
            Worker.objects.using(self.using)
            .filter(status=Worker.Status.READY)
            .exclude(pk__in=stale_ids)
            .values_list("queues__name", flat=True)
        )
        unserved = [
            m.name
            for m in self.all_queues_metrics()
            if m.ready and not m.paused and m.name not in served
        ]
        return HealthReport(
            stale_workers=[w.name for w in stale],
            unserved_queues=unserved,
            running_workers=Worker.objects.using(self.using).running().count(),
        )

    def reclaim(self, timeout: float | None = None) -> ReclaimResult:
        """Mark workers whose heartbeat is older than ``timeout`` seconds (default
        ``STALE_WORKER_TIMEOUT``) stopped, and make every message held by a stopped worker
        claimable at once."""
        with transaction.atomic(using=self.using):
            stale = list(
                Worker.objects.using(self.using)
                .stale(timeout)
                .select_for_update(skip_locked=True)
                .values_list("pk", flat=True)
            )
            Worker.objects.using(self.using).filter(pk__in=stale).update(
                status=Worker.Status.STOPPED, stopped_at=Now()
            )
            released = (
                Message.objects.using(self.using)
                .filter(consumer__status=Worker.Status.STOPPED)
                .update(vt=Now(), claimed_at=None, consumer=None)
            )
        return ReclaimResult(workers=len(stale), messages=released)

    def purge_old_workers(self, older_than: float | dt.timedelta = dt.timedelta(days=7)) -> int:
        """Delete stopped workers that stopped over ``older_than`` ago. Returns the count."""
        age = dt.timedelta(seconds=seconds(older_than, "older than"))
        _, by_model = (
            Worker.objects.using(self.using)
            .filter(status=Worker.Status.STOPPED, stopped_at__lt=Now() - age)
            .delete()
        )
        # Only the workers: the total also counts their rows in the queue link table.
        return by_model.get(Worker._meta.label, 0)

    ainstall = async_twin(install)
    auninstall = async_twin(uninstall)
    averify = async_twin(verify)
    acreate_queue = async_twin(create_queue)
    aget_queue = async_twin(get_queue)
    alist_queues = async_twin(list_queues)
    adelete_queue = async_twin(delete_queue)
    apurge_queue = async_twin(purge_queue)
    apurge_archive = async_twin(purge_archive)
    apause_queue = async_twin(pause_queue)
    aresume_queue = async_twin(resume_queue)
    aqueue_metrics = async_twin(queue_metrics)
    aall_queues_metrics = async_twin(all_queues_metrics)
    athroughput = async_twin(throughput)
    asystem_stats = async_twin(system_stats)
    aget_message = async_twin(get_message)
    alist_archive = async_twin(list_archive)
    adelete_messages = async_twin(delete_messages)
    arelease_messages = async_twin(release_messages)
    acancel_messages = async_twin(cancel_messages)
    areplay_dead = async_twin(replay_dead)
    aregister_worker = async_twin(register_worker)
    aheartbeat = async_twin(heartbeat)
    astop_worker = async_twin(stop_worker)
    alist_workers = async_twin(list_workers)
    aget_worker = async_twin(get_worker)
    asuspend_worker = async_twin(suspend_worker)
    aresume_worker = async_twin(resume_worker)
    ashutdown_worker = async_twin(shutdown_worker)
    astale_workers = async_twin(stale_workers)
    ahealth = async_twin(health)
    areclaim = async_twin(reclaim)
    apurge_old_workers = async_twin(purge_old_workers)
