"""``pgqrs queue ...``: create, inspect, pause and empty queues."""

from __future__ import annotations

from typing import Any, ClassVar

from pgqrs_django.formatting import METRICS_COLUMNS, QUEUE_COLUMNS, metrics_row, queue_row

from .base import QUEUE, Context, Subcommand, arg, duration_option
from .output import Output
from .types import count, queue_name


class QueueCreate(Subcommand):
    """Create a queue.

    example: manage.py pgqrs queue create emails --visibility-timeout 30s --max-attempts 5
    """

    path = ("queue", "create")
    arguments = (
        arg(
            "name",
            metavar="NAME",
            type=queue_name,
            help="Queue name: 1-128 letters, digits, '_', '-' or '.'.",
        ),
        duration_option(
            "--visibility-timeout",
            "Lease length of a claimed message (default: PGQRS['DEFAULT_LOCK_TIME']).",
        ),
        arg(
            "--max-attempts",
            type=count,
            metavar="N",
            help="Deliveries before a failing message is dead-lettered "
            "(default: PGQRS['MAX_ATTEMPTS']).",
        ),
        arg(
            "--dead-letter-queue",
            type=queue_name,
            metavar="QUEUE",
            help="Existing queue that receives messages whose attempts run out (default: "
            "none, they are archived as 'dead').",
        ),
    )

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        queue = ctx.admin.create_queue(
            options["name"],
            visibility_timeout=options["visibility_timeout"],
            max_attempts=options["max_attempts"],
            dead_letter_queue=options["dead_letter_queue"],
        )
        return Output(queue_row(queue))


class QueueList(Subcommand):
    """List queues.

    example: manage.py pgqrs queue list
    """

    path = ("queue", "list")

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        rows = [queue_row(q) for q in ctx.admin.list_queues()]
        return Output(rows, columns=QUEUE_COLUMNS, empty="no queues")


class QueueGet(Subcommand):
    """Show one queue's settings.

    example: manage.py pgqrs queue get emails
    """

    path = ("queue", "get")
    arguments = (QUEUE,)

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        return Output(queue_row(ctx.admin.get_queue(options["queue"])))


class QueueDelete(Subcommand):
    """Delete a queue with its active and archived messages.

    example: manage.py pgqrs queue delete old-emails
    """

    path = ("queue", "delete")
    arguments = (QUEUE,)

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        name = options["queue"]
        deleted = ctx.admin.delete_queue(name)
        return Output(
            {"queue": name, "deleted": True, **deleted},
            text=f"deleted queue {name!r} with {deleted['messages']} active and "
            f"{deleted['archived']} archived messages",
        )


class QueuePurge(Subcommand):
    """Delete every active message of a queue (the archive is kept).

    example: manage.py pgqrs queue purge emails
    """

    path = ("queue", "purge")
    arguments = (QUEUE,)

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        deleted = ctx.admin.purge_queue(name := options["queue"])
        text = f"deleted {deleted} active messages from queue {name!r}"
        return Output({"queue": name, "deleted": deleted}, text=text)


class QueueMetrics(Subcommand):
    """Counts per queue: ready, delayed, in flight, archived by outcome, oldest age.

    Show the metrics of one queue (JSON: an object) or of every queue (JSON: a list).

    example: manage.py pgqrs queue metrics
    """

    path = ("queue", "metrics")
    arguments = (
        arg(
            "queue",
            metavar="QUEUE",
            type=queue_name,
            nargs="?",
            help="Queue name (default: every queue).",
        ),
    )

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        if options["queue"] is not None:
            row = metrics_row(ctx.admin.queue_metrics(options["queue"]))
            return Output(row, columns=METRICS_COLUMNS, rows=[row])
        rows = [metrics_row(m) for m in ctx.admin.all_queues_metrics()]
        return Output(rows, columns=METRICS_COLUMNS, empty="no queues")


class _SetPaused(Subcommand):
    paused: ClassVar[bool]
    arguments = (QUEUE,)

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        queue = ctx.admin.set_paused(options["queue"], self.paused)
        state = "paused" if self.paused else "resumed"
        return Output(queue_row(queue), text=f"queue {queue.name!r} {state}")


class QueuePause(_SetPaused):
    """Pause a queue: it accepts messages but hands none out.

    example: manage.py pgqrs queue pause emails
    """

    path = ("queue", "pause")
    paused = True


class QueueResume(_SetPaused):
    """Resume a paused queue.

    example: manage.py pgqrs queue resume emails
    """

    path = ("queue", "resume")
    paused = False


SUBCOMMANDS: list[type[Subcommand]] = [
    QueueCreate,
    QueueList,
    QueueGet,
    QueueDelete,
    QueuePurge,
    QueueMetrics,
    QueuePause,
    QueueResume,
]
