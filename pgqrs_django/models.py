"""The four pgqrs tables as Django models: Queue, Worker, Message (active) and Archive (history).

The QuerySets are pgqrs's "Table APIs" (count, count_by_fk, filter_by_fk) in Django form:
``Message.objects.for_queue("emails").ready().count()``. Times are compared with the database
clock (``Now()``), never the application's, so clock skew between hosts cannot leak leases.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now
from django.utils import timezone

from . import conf
from .validation import QUEUE_NAME_MAX_LENGTH, queue_name_validator


class AsDictMixin:
    """``as_dict()``: the row's column values by attribute name (``queue_id``, not ``queue``)."""

    _meta: Any

    def as_dict(self) -> dict[str, Any]:
        return {f.attname: getattr(self, f.attname) for f in self._meta.concrete_fields}


def default_visibility_timeout() -> float:
    """New queues take their lease length from ``PGQRS["DEFAULT_LOCK_TIME"]``."""
    return float(conf.get("DEFAULT_LOCK_TIME"))


def default_max_attempts() -> int:
    """New queues take their attempt limit from ``PGQRS["MAX_ATTEMPTS"]``."""
    return int(conf.get("MAX_ATTEMPTS"))


def error_class_field(help_text: str) -> models.TextField[str, str]:
    """Where an exception's class path is kept beside the error text (``Consumer.fail``);
    "" for an error that was no exception. ``db_default``: raw inserts that leave the column
    out (the enqueue statement) get "" too."""
    return models.TextField(blank=True, default="", db_default="", help_text=help_text)


class QueueQuerySet(models.QuerySet["Queue"]):
    def named(self, name: str) -> Queue:
        """The queue with this name (``Queue.DoesNotExist`` if none)."""
        return self.get(name=name)

    def paused(self) -> QueueQuerySet:
        return self.filter(paused=True)

    def active(self) -> QueueQuerySet:
        return self.filter(paused=False)


class Queue(AsDictMixin, models.Model):
    """A named queue and its delivery policy."""

    name = models.CharField(
        max_length=QUEUE_NAME_MAX_LENGTH, unique=True, validators=[queue_name_validator]
    )
    created_at = models.DateTimeField(default=timezone.now)
    visibility_timeout = models.FloatField(
        default=default_visibility_timeout,
        validators=[MinValueValidator(0.001)],
        help_text="Seconds a claimed message stays invisible to other consumers (the lease).",
    )
    max_attempts = models.PositiveIntegerField(
        default=default_max_attempts,
        validators=[MinValueValidator(1)],
        help_text="Deliveries before a failing message is dead-lettered.",
    )
    paused = models.BooleanField(
        default=False, help_text="A paused queue accepts messages but hands none out."
    )
    dead_letter_queue = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="dead_letter_sources",
        help_text="Where messages go when attempts run out; without one they are archived "
        "with outcome 'dead'.",
    )

    objects = QueueQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            # The same rule as validation.QUEUE_NAME_PATTERN, enforced for every writer.
            models.CheckConstraint(
                condition=Q(name__regex=r"^[A-Za-z0-9_.\-]{1,128}$"),
                name="pgqrs_queue_name_valid",
            ),
            models.CheckConstraint(
                condition=Q(visibility_timeout__gt=0), name="pgqrs_queue_vt_positive"
            ),
            models.CheckConstraint(
                condition=Q(max_attempts__gte=1), name="pgqrs_queue_max_attempts_positive"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class QueueScopedQuerySet(models.QuerySet[Any]):
    """``for_queue(name_or_queue)`` for the models that point at a queue."""

    queue_field = "queue"

    def for_queue(self, queue: Queue | str) -> Any:
        if isinstance(queue, Queue):
            return self.filter(**{self.queue_field: queue})
        return self.filter(**{f"{self.queue_field}__name": queue})


class WorkerQuerySet(QueueScopedQuerySet):
    queue_field = "queues"

    def running(self) -> WorkerQuerySet:
        """Workers that have not stopped (ready or suspended)."""
        return self.exclude(status=Worker.Status.STOPPED)

    def stale(self, timeout: float | None = None) -> WorkerQuerySet:
        """Running workers whose last heartbeat is older than ``timeout`` seconds
        (``STALE_WORKER_TIMEOUT`` by default): presumed dead."""
        seconds = float(conf.get("STALE_WORKER_TIMEOUT") if timeout is None else timeout)
        return self.running().filter(heartbeat_at__lt=Now() - dt.timedelta(seconds=seconds))


class Worker(AsDictMixin, models.Model):
    """A registered consumer process. One row per process; it links every queue it serves."""

    class Status(models.TextChoices):
        READY = "ready", "ready"
        SUSPENDED = "suspended", "suspended"
        STOPPED = "stopped", "stopped"

    name = models.CharField(max_length=200, unique=True)
    hostname = models.CharField(max_length=255)
    pid = models.IntegerField()
    queues = models.ManyToManyField(Queue, related_name="workers", blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.READY)
    shutdown_requested = models.BooleanField(
        default=False, help_text="Set by an operator; the worker stops at its next poll."
    )
    started_at = models.DateTimeField(default=timezone.now)
    heartbeat_at = models.DateTimeField(default=timezone.now)
    stopped_at = models.DateTimeField(null=True, blank=True)

    objects = WorkerQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at", "id"]
        indexes = [
            models.Index(
                fields=["heartbeat_at"],
                name="pgqrs_worker_running_idx",
                condition=~Q(status="stopped"),
            ),
        ]

    def __str__(self) -> str:
        return self.name


class MessageQuerySet(QueueScopedQuerySet):
    def ready(self) -> MessageQuerySet:
        """Claimable now: visible (vt passed), including messages whose lease expired."""
        return self.filter(vt__lte=Now())

    def in_flight(self) -> MessageQuerySet:
        """Held under a live lease by a consumer."""
        return self.filter(vt__gt=Now(), claimed_at__isnull=False)

    def delayed(self) -> MessageQuerySet:
        """Not yet visible and not leased: scheduled for later or waiting for a retry."""
        return self.filter(vt__gt=Now(), claimed_at__isnull=True)

    def stale(self, timeout: float | None = None) -> MessageQuerySet:
        """Held by workers whose heartbeat is stale (see ``WorkerQuerySet.stale``)."""
        return self.filter(
            consumer__in=Worker.objects.stale(timeout).values("pk"), claimed_at__isnull=False
        )


class Message(AsDictMixin, models.Model):
    """An active message: waiting (ready or delayed) or leased to a consumer."""

    id = models.BigAutoField(primary_key=True)
    # Indexed as the first column of the claim index below.
    queue = models.ForeignKey(
        Queue, on_delete=models.CASCADE, related_name="messages", db_index=False
    )
    payload = models.JSONField()
    priority = models.IntegerField(default=0, help_text="Higher is claimed first.")
    enqueued_at = models.DateTimeField(default=timezone.now)
    vt = models.DateTimeField(
        default=timezone.now,
        verbose_name="visible at",
        help_text="When the message can next be claimed (delay, lease end or retry time).",
    )
    read_ct = models.IntegerField(default=0, verbose_name="deliveries")
    dequeued_at = models.DateTimeField(null=True, blank=True, help_text="First delivery.")
    claimed_at = models.DateTimeField(
        null=True, blank=True, help_text="Start of the current lease; empty when not leased."
    )
    consumer = models.ForeignKey(
        Worker,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="messages",
        db_index=False,
    )
    # NULL, not "", means "no key": the partial unique index skips NULLs.
    dedupe_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    last_error = models.TextField(blank=True, default="")
    last_error_class = error_class_field(
        "Dotted path of the exception class of the last error; empty when the error was not "
        "an exception."
    )

    objects = MessageQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        indexes = [
            # Serves the claim: WHERE queue_id = ? AND vt <= now()
            #                   ORDER BY priority DESC, vt, id LIMIT n FOR UPDATE SKIP LOCKED
            models.Index(fields=["queue", "-priority", "vt", "id"], name="pgqrs_msg_claim_idx"),
            # Serves reclaiming the messages of dead workers; most rows have no consumer.
            models.Index(
                fields=["consumer"],
                name="pgqrs_msg_consumer_idx",
                condition=Q(consumer__isnull=False),
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["queue", "dedupe_key"],
                condition=Q(dedupe_key__isnull=False),
                name="pgqrs_msg_dedupe_uniq",
            ),
        ]

    def __str__(self) -> str:
        return f"message {self.id} on {self.queue_id}"

    @property
    def attempts(self) -> int:
        """Deliveries so far (``read_ct``)."""
        return self.read_ct


class ArchiveQuerySet(QueueScopedQuerySet):
    def succeeded(self) -> ArchiveQuerySet:
        return self.filter(outcome=Archive.Outcome.SUCCEEDED)

    def failed(self) -> ArchiveQuerySet:
        return self.filter(outcome=Archive.Outcome.FAILED)

    def dead(self) -> ArchiveQuerySet:
        return self.filter(outcome=Archive.Outcome.DEAD)

    def cancelled(self) -> ArchiveQuerySet:
        return self.filter(outcome=Archive.Outcome.CANCELLED)

    def older_than(self, age: dt.timedelta) -> ArchiveQuerySet:
        return self.filter(archived_at__lt=Now() - age)


class Archive(AsDictMixin, models.Model):
    """A finished message: its fields when it left the active table, and how it ended.

    The primary key is the message id, so a message can reach the archive at most once.
    """

    class Outcome(models.TextChoices):
        SUCCEEDED = "succeeded", "succeeded"
        FAILED = "failed", "failed"
        DEAD = "dead", "dead"
        CANCELLED = "cancelled", "cancelled"

    id = models.BigIntegerField(primary_key=True, verbose_name="message id")
    queue = models.ForeignKey(
        Queue, on_delete=models.CASCADE, related_name="archived", db_index=False
    )
    payload = models.JSONField()
    priority = models.IntegerField(default=0)
    enqueued_at = models.DateTimeField()
    vt = models.DateTimeField(verbose_name="visible at")
    read_ct = models.IntegerField(default=0, verbose_name="deliveries")
    dequeued_at = models.DateTimeField(null=True, blank=True)
    dedupe_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    archived_at = models.DateTimeField(default=timezone.now)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    duration = models.FloatField(
        null=True, blank=True, help_text="Seconds the last delivery took to process."
    )
    # A name, not a foreign key: history outlives purged worker rows.
    worker_name = models.CharField(max_length=200, blank=True, default="")
    error = models.TextField(blank=True, default="", help_text="Error text and traceback.")
    error_class = error_class_field(
        "Dotted path of the exception class of the error ('builtins.ValueError'); empty when "
        "the error was not an exception (a cancel reason, ...)."
    )
    result = models.JSONField(null=True, blank=True)

    objects = ArchiveQuerySet.as_manager()

    class Meta:
        ordering = ["-archived_at", "-id"]
        verbose_name_plural = "archive"
        indexes = [
            models.Index(fields=["queue", "archived_at"], name="pgqrs_arch_queue_time_idx"),
            models.Index(fields=["queue", "outcome"], name="pgqrs_arch_queue_outcome_idx"),
        ]

    def __str__(self) -> str:
        return f"archived message {self.id} ({self.outcome})"


class Dashboard(models.Model):
    """No table: gives the admin dashboard a place in the admin index and its own
    permission (``pgqrs.view_dashboard``), as django-rq does for its queue pages."""

    class Meta:
        managed = False
        default_permissions = ("view",)
        verbose_name = "dashboard"
        verbose_name_plural = "dashboard"

    def __str__(self) -> str:
        return "dashboard"


class Schedule(AsDictMixin, models.Model):
    """Where a periodic job stands: the last cron tick enqueued for it.

    Workers advance ``last_tick`` with one compare-and-set UPDATE, in the transaction of the
    enqueue, so each tick is enqueued once however many workers run (see scheduling.py)."""

    name = models.CharField(max_length=200, unique=True)
    cron = models.CharField(max_length=200)
    queue_name = models.CharField(max_length=QUEUE_NAME_MAX_LENGTH)
    last_tick = models.DateTimeField(help_text="The latest tick enqueued (or skipped as past).")
    last_message_id = models.BigIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.cron} -> {self.queue_name})"
