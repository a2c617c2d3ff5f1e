"""Counts for operators: per-queue metrics, throughput over a window, and system totals.

Each is a frozen dataclass and the few grouped queries that fill it, whatever the number of
queues. :class:`~pgqrs_django.admin_api.PgqrsAdmin` exposes them (``queue_metrics``,
``all_queues_metrics``, ``throughput``, ``system_stats``); the admin dashboard and the
``stats`` command read them from there.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any

from django.db import connections
from django.db.models import (
    BooleanField,
    Count,
    DurationField,
    ExpressionWrapper,
    IntegerField,
    Min,
    Q,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Now

from . import schema
from .models import Archive, Message, Queue, Worker
from .validation import positive_int, seconds


@dataclasses.dataclass(frozen=True)
class QueueMetrics:
    """Counts for one queue, all read in the same few statements."""

    name: str
    paused: bool
    ready: int
    delayed: int
    in_flight: int
    archived: int
    succeeded: int
    failed: int
    dead: int
    cancelled: int
    #: Seconds the oldest visible message has been waiting (None when none is ready).
    oldest_ready_age: float | None
    #: Running (not stopped) workers serving the queue.
    workers: int

    @property
    def pending(self) -> int:
        """Active messages: ready + delayed + in flight."""
        return self.ready + self.delayed + self.in_flight

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "pending": self.pending}


@dataclasses.dataclass(frozen=True)
class Throughput:
    """Messages archived over a recent window, in equal buckets, oldest bucket first.

    ``processed[i]`` counts every outcome, ``failures[i]`` those archived ``failed`` or
    ``dead``; bucket ``i`` covers the ``bucket_seconds`` ending
    ``(len(processed) - 1 - i) * bucket_seconds`` before the database's ``now()``."""

    window: float
    bucket_seconds: float
    processed: list[int]
    failures: list[int]
    #: Messages archived over the whole window, by queue name (queues with none omitted).
    by_queue: dict[str, int]

    def per_minute(self, queue: str | None = None) -> float:
        """Average messages archived per minute over the window (one queue, or all)."""
        total = sum(self.processed) if queue is None else self.by_queue.get(queue, 0)
        return total * 60.0 / self.window

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class SystemStats:
    queues: int
    paused_queues: int
    workers: dict[str, int]
    stale_workers: int
    ready: int
    delayed: int
    in_flight: int
    archived: int
    dead: int
    table_bytes: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def queue_metrics(queues: Sequence[Queue], using: str) -> list[QueueMetrics]:
    """Metrics for ``queues``, in their order, in three grouped queries whatever their
    number."""
    ids = [q.pk for q in queues]
    active: dict[int, dict[str, Any]] = {
        row["queue"]: dict(row)
        for row in Message.objects.using(using)
        .filter(queue__in=ids)
        .values("queue")
        .annotate(
            ready=Count("id", filter=Q(vt__lte=Now())),
            delayed=Count("id", filter=Q(vt__gt=Now(), claimed_at__isnull=True)),
            in_flight=Count("id", filter=Q(vt__gt=Now(), claimed_at__isnull=False)),
            oldest_ready_age=ExpressionWrapper(
                Now() - Min("vt", filter=Q(vt__lte=Now())), output_field=DurationField()
            ),
        )
        .order_by()
    }
    archived: dict[int, dict[str, int]] = {}
    for row in (
        Archive.objects.using(using)
        .filter(queue__in=ids)
        .values("queue", "outcome")
        .annotate(n=Count("id"))
        .order_by()
    ):
        archived.setdefault(row["queue"], {})[row["outcome"]] = row["n"]
    workers = dict(
        Worker.objects.using(using)
        .running()
        .filter(queues__in=ids)
        .values_list("queues")
        .annotate(n=Count("id"))
        .order_by()
    )
    out = []
    for q in queues:
        a = active.get(q.pk, {})
        outcomes = archived.get(q.pk, {})
        oldest = a.get("oldest_ready_age")
        out.append(
            QueueMetrics(
                name=q.name,
                paused=q.paused,
                ready=a.get("ready", 0),
                delayed=a.get("delayed", 0),
                in_flight=a.get("in_flight", 0),
                archived=sum(outcomes.values()),
                succeeded=outcomes.get(Archive.Outcome.SUCCEEDED, 0),
                failed=outcomes.get(Archive.Outcome.FAILED, 0),
                dead=outcomes.get(Archive.Outcome.DEAD, 0),
                cancelled=outcomes.get(Archive.Outcome.CANCELLED, 0),
                oldest_ready_age=oldest.total_seconds() if oldest is not None else None,
                workers=workers.get(q.pk, 0),
            )
        )
    return out


def throughput(using: str, window: float, buckets: int) -> Throughput:
    """Messages archived (and among them failed or dead) over the last ``window`` seconds,
    in ``buckets`` equal buckets, plus the total per queue: one query."""
    span = seconds(window, "window", allow_zero=False)
    count = positive_int(buckets, "buckets", maximum=1_000)
    width = span / count
    # Bucket 0 is the most recent; ages are measured with the database clock.
    age_bucket = RawSQL(
        "LEAST(FLOOR(EXTRACT(EPOCH FROM (now() - archived_at)) / %s), %s)",
        [width, count - 1],
        output_field=IntegerField(),
    )
    rows = (
        Archive.objects.using(using)
        .filter(archived_at__gte=Now() - dt.timedelta(seconds=span))
        .annotate(
            bucket=age_bucket,
            failure=ExpressionWrapper(
                Q(outcome__in=[Archive.Outcome.FAILED, Archive.Outcome.DEAD]),
                output_field=BooleanField(),
            ),
        )
        .values("queue__name", "bucket", "failure")
        .annotate(n=Count("id"))
        .order_by()
    )
    processed = [0] * count
    failures = [0] * count
    by_queue: dict[str, int] = {}
    for row in rows:
        index = count - 1 - max(int(row["bucket"]), 0)
        processed[index] += row["n"]
        if row["failure"]:
            failures[index] += row["n"]
        by_queue[row["queue__name"]] = by_queue.get(row["queue__name"], 0) + row["n"]
    return Throughput(span, width, processed, failures, by_queue)


def system_stats(using: str) -> SystemStats:
    """Totals across all queues, worker counts by status, and the size in bytes of every
    pgqrs table (indexes and TOAST included)."""
    metrics = queue_metrics(list(Queue.objects.using(using).order_by("name")), using)
    by_status = dict(
        Worker.objects.using(using).values_list("status").annotate(n=Count("id")).order_by()
    )
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT relname, pg_total_relation_size(oid) FROM pg_class "
            "WHERE relname = ANY(%s) AND relkind = 'r'",
            [schema.tables()],
        )
        sizes = {name: int(size) for name, size in cursor.fetchall()}
    return SystemStats(
        queues=len(metrics),
        paused_queues=sum(m.paused for m in metrics),
        workers={s.value: by_status.get(s.value, 0) for s in Worker.Status},
        stale_workers=Worker.objects.using(using).stale().count(),
        ready=sum(m.ready for m in metrics),
        delayed=sum(m.delayed for m in metrics),
        in_flight=sum(m.in_flight for m in metrics),
        archived=sum(m.archived for m in metrics),
        dead=sum(m.dead for m in metrics),
        table_bytes=sizes,
    )
