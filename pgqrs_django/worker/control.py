"""The worker's own row: registration, heartbeats, what operators ask of it (suspend,
resume, shutdown), reclaiming dead workers' messages, and the stop at the end."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.db.models.functions import Now

from ..admin_api import PgqrsAdmin
from ..exceptions import InvalidInput, WorkerNotFound
from ..models import Queue, Worker
from .jobs import ServedQueue
from .options import Settings
from .retry import DatabaseRetry

logger = logging.getLogger(__name__)


class Control:
    """Keeps the ``Worker`` row of this process alive and acts on it.

    Every ``heartbeat_interval`` it heartbeats and reclaims stale workers' messages (which
    also refreshes the served queues' policies); every ``poll_interval`` in between it reads
    its row for operator requests. ``on_shutdown(reason)`` is called on a shutdown request.
    """

    def __init__(
        self,
        settings: Settings,
        db: DatabaseRetry,
        served: dict[int, ServedQueue],
        on_shutdown: Callable[[str], None],
    ) -> None:
        self.settings = settings
        self.using = settings.using
        self.db = db
        self.admin = PgqrsAdmin(using=self.using)
        self.served = served
        self.on_shutdown = on_shutdown
        self.worker: Worker | None = None
        self.suspended = False
        self.next_heartbeat = self.next_status = self.next_reclaim = 0.0

    def register(self, rows: list[Queue], name: str | None) -> Worker:
        """Register the worker row (raises InvalidInput when ``name`` is taken)."""
        if name is not None:
            self._take_over_name(name)
        self.worker = self.admin.register_worker(rows, name=name)
        return self.worker

    def _take_over_name(self, name: str) -> None:
        """A fixed ``--name`` may be reused once its previous holder stopped or went stale."""
        if not name.strip() or len(name) > 200:
            raise InvalidInput("worker name must be 1-200 characters")
        old = Worker.objects.using(self.using).filter(name=name).first()
        if old is None:
            return
        stale = Worker.objects.using(self.using).stale().filter(pk=old.pk).exists()
        if old.status != Worker.Status.STOPPED and not stale:
            raise InvalidInput(
                f"a worker named {name!r} is running (pid {old.pid} on {old.hostname}); "
                "choose another --name"
            )
        self.admin.stop_worker(old)
        old.delete(using=self.using)

    def start(self, now: float) -> None:
        self.next_heartbeat = now + self.settings.heartbeat_interval
        self.next_status = now + self.settings.poll_interval
        self.next_reclaim = now  # release dead workers' messages before the first claim

    def deadlines(self) -> list[float]:
        return [self.next_heartbeat, self.next_status, self.next_reclaim]

    def tick(self, now: float) -> None:
        """Heartbeat, read the row, or reclaim, whichever is due."""
        if not self.db.ready():
            return
        if now >= self.next_heartbeat:
            ok, row = self.db.call("sending a heartbeat", self._heartbeat)
            if not ok:
                return
            self.next_heartbeat = now + self.settings.heartbeat_interval
            self.next_status = now + self.settings.poll_interval
            self._apply(row)
        elif now >= self.next_status:
            ok, row = self.db.call("reading the worker status", self._status)
            if not ok:
                return
            self.next_status = now + self.settings.poll_interval
            self._apply(row)
        if now >= self.next_reclaim:
            ok, result = self.db.call("reclaiming", self._reclaim)
            if ok:
                self.next_reclaim = now + self.settings.heartbeat_interval
                if result.workers or result.messages:
                    logger.warning(
                        "reclaimed %d message(s) of %d stale worker(s)",
                        result.messages,
                        result.workers,
                    )

    def stop(self) -> tuple[bool, int]:
        """Mark the row stopped, releasing what it still holds: ``(ok, released)``."""
        assert self.worker is not None
        return self.db.call("marking the worker stopped", self.admin.stop_worker, self.worker)

    def _heartbeat(self) -> Worker:
        assert self.worker is not None
        try:
            return self.admin.heartbeat(self.worker)
        except WorkerNotFound:
            logger.warning("worker row %s was deleted; registering again", self.worker.name)
            rows = [served.row for served in self.served.values()]
            self.worker = self.admin.register_worker(rows, name=self.worker.name)
            for served in self.served.values():
                served.consumer.worker = self.worker
            return self.worker

    def _status(self) -> Worker:
        assert self.worker is not None
        row = Worker.objects.using(self.using).filter(pk=self.worker.pk).first()
        return row if row is not None else self._heartbeat()

    def _reclaim(self) -> Any:
        result = self.admin.reclaim()
        for pk, timeout, attempts in (
            Queue.objects.using(self.using)
            .filter(pk__in=list(self.served))
            .values_list("pk", "visibility_timeout", "max_attempts")
        ):
            served = self.served[pk]
            served.visibility_timeout, served.max_attempts = timeout, attempts
        return result

    def _apply(self, row: Worker) -> None:
        """Act on what operators set on our row."""
        self.worker = row
        if row.status == Worker.Status.STOPPED:
            # Our heartbeat went stale (a long database outage) and someone reclaimed our
            # messages: we are alive, so come back; the leases we lost report False.
            logger.warning("worker %s was marked stopped while alive; resuming", row.name)
            Worker.objects.using(self.using).filter(pk=row.pk).update(
                status=Worker.Status.READY, stopped_at=None, heartbeat_at=Now()
            )
            row.status = Worker.Status.READY
        suspended = row.status == Worker.Status.SUSPENDED
        if suspended != self.suspended:
            self.suspended = suspended
            logger.warning("worker %s %s", row.name, "suspended" if suspended else "resumed")
        if row.shutdown_requested:
            self.on_shutdown("shutdown requested by an operator")
