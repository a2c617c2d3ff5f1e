"""``pgqrs worker ...``: inspect and steer worker processes."""

from __future__ import annotations

from typing import Any, ClassVar

from pgqrs_django.formatting import WORKER_COLUMNS, format_seconds, worker_row

from .base import WORKER, Context, Subcommand, arg, duration_option, flag
from .output import Output
from .types import queue_name

#: ``--timeout`` of reclaim and health: how old a heartbeat may be.
STALE_AFTER = "Heartbeat age that counts as {} (default: PGQRS['STALE_WORKER_TIMEOUT'])."


class WorkerList(Subcommand):
    """List workers with their status and heartbeat.

    example: manage.py pgqrs worker list --running
    """

    path = ("worker", "list")
    arguments = (
        arg("--queue", type=queue_name, metavar="QUEUE", help="Only workers serving this queue."),
        flag("--running", help="Only running workers (not stopped)."),
    )

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        admin = ctx.admin
        workers = admin.list_workers(options["queue"], running_only=options["running"])
        stale = {w.pk for w in admin.stale_workers()}
        rows = [worker_row(w, stale=w.pk in stale) for w in workers]
        return Output(rows, columns=WORKER_COLUMNS, empty="no workers")


class WorkerShow(Subcommand):
    """Show one worker.

    example: manage.py pgqrs worker show web-1
    """

    path = ("worker", "show")
    arguments = (WORKER,)

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        admin = ctx.admin
        worker = admin.get_worker(options["worker"])
        stale = any(w.pk == worker.pk for w in admin.stale_workers())
        return Output(worker_row(worker, stale=stale))


class _WorkerAction(Subcommand):
    #: The PgqrsAdmin method that acts on the worker, and what the table output says.
    method: ClassVar[str]
    done: ClassVar[str]
    arguments = (WORKER,)

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        worker = getattr(ctx.admin, self.method)(options["worker"])
        return Output(worker_row(worker), text=f"worker {worker.name!r} {self.done}")


class WorkerSuspend(_WorkerAction):
    """Ask a worker to stop claiming (it finishes what it holds and keeps heartbeating).

    example: manage.py pgqrs worker suspend web-1
    """

    path = ("worker", "suspend")
    method, done = "suspend_worker", "suspended"


class WorkerResume(_WorkerAction):
    """Let a suspended worker claim again.

    example: manage.py pgqrs worker resume web-1
    """

    path = ("worker", "resume")
    method, done = "resume_worker", "resumed"


class WorkerShutdown(_WorkerAction):
    """Ask a worker to stop gracefully at its next poll.

    example: manage.py pgqrs worker shutdown web-1
    """

    path = ("worker", "shutdown")
    method, done = "shutdown_worker", "asked to shut down"


class WorkerReclaim(Subcommand):
    """Stop workers with a stale heartbeat and make their messages ready again.

    example: manage.py pgqrs worker reclaim --timeout 2m
    """

    path = ("worker", "reclaim")
    arguments = (duration_option("--timeout", STALE_AFTER.format("dead")),)

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        result = ctx.admin.reclaim(options["timeout"])
        text = f"stopped {result.workers} stale workers; {result.messages} messages made ready"
        return Output(result.as_dict(), text=f"{text} again")


class WorkerPurge(Subcommand):
    """Delete rows of workers that stopped longer ago than --older-than.

    example: manage.py pgqrs worker purge --older-than 30d
    """

    path = ("worker", "purge")
    arguments = (
        duration_option(
            "--older-than", "Stopped for longer than this (default: 7d).", default=7 * 86400.0
        ),
    )

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        deleted = ctx.admin.purge_old_workers(age := options["older_than"])
        text = f"deleted {deleted} workers stopped over {format_seconds(age)} ago"
        return Output({"deleted": deleted, "older_than": age}, text=text)


class WorkerHealth(Subcommand):
    """Exit 1 if a worker is stale or a queue with ready messages has no live worker.

    Healthy means: no running worker has a heartbeat older than the stale timeout, and every
    queue that has ready messages and is not paused is served by at least one worker whose
    status is 'ready' and whose heartbeat is fresh. Exits 1 otherwise, so it can serve as a
    liveness probe.

    example: manage.py pgqrs worker health
    """

    path = ("worker", "health")
    arguments = (duration_option("--timeout", STALE_AFTER.format("stale")),)

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        report = ctx.admin.health(options["timeout"])
        problems = []
        if report.stale_workers:
            problems.append(
                f"{len(report.stale_workers)} stale worker(s): {', '.join(report.stale_workers)}"
            )
        if report.unserved_queues:
            problems.append(
                f"{len(report.unserved_queues)} queue(s) with ready messages and no live "
                f"worker: {', '.join(report.unserved_queues)}"
            )
        status = "healthy" if report.ok else "unhealthy"
        text = f"{status}: {report.running_workers} running worker(s)"
        text += "".join(f"\n  {p}" for p in problems)
        failure = f"unhealthy: {'; '.join(problems)}" if problems else None
        return Output(report.as_dict(), text=text, failure=failure)


SUBCOMMANDS: list[type[Subcommand]] = [
    WorkerList,
    WorkerShow,
    WorkerSuspend,
    WorkerResume,
    WorkerShutdown,
    WorkerReclaim,
    WorkerPurge,
    WorkerHealth,
]
