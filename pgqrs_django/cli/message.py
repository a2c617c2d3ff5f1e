"""``pgqrs message ...``: send, read, inspect and delete messages."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError
from django.db import transaction

from pgqrs_django.exceptions import MessageNotFound
from pgqrs_django.formatting import MESSAGE_COLUMNS, archive_row, message_row, render_record

from .archive import archived
from .base import MESSAGE_ID, QUEUE, Context, Subcommand, arg, duration_option, flag
from .errors import OPERATIONAL, UsageError
from .output import Output
from .send import MessageSend
from .types import count, message_id


class MessageRead(Subcommand):
    """Claim messages under a lease and print them (--archive: list archived ones).

    Claim up to --count ready messages (default 1) and print them. They stay leased
    (invisible to workers) for --lock-time, then become ready again unless settled. With
    --archive, list the --count most recently archived messages instead (default 20);
    nothing is claimed.

    example: manage.py pgqrs message read emails --count 10 --lock-time 1m
    """

    path = ("message", "read")
    arguments = (
        QUEUE,
        arg(
            "--count",
            type=count,
            metavar="N",
            help="How many messages (default: 1, or 20 with --archive; at most 10,000).",
        ),
        duration_option("--lock-time", "Lease length (default: the queue's visibility timeout)."),
        flag("--archive", help="List archived messages; claim nothing."),
    )

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        name = options["queue"]
        if options["archive"]:
            if options["lock_time"] is not None:
                raise UsageError("message read: --lock-time does not apply with --archive")
            return archived(ctx, name, options["count"] or 20)
        messages = ctx.consumer(name).dequeue_batch(
            options["count"] or 1, lock_time=options["lock_time"]
        )
        data = [message_row(m, queue=name) for m in messages]
        return Output(data, columns=MESSAGE_COLUMNS, empty=f"no ready message in queue {name!r}")


class MessageDequeue(Subcommand):
    """Take the next ready message: claim it, archive it (or --delete it), print it.

    Claim the next ready message (highest priority, then oldest) and settle it at once, in
    one transaction: archive it with outcome 'succeeded', or delete it with --delete. Prints
    the message as it was claimed (JSON: null when the queue has none ready).

    example: manage.py pgqrs message dequeue emails
    """

    path = ("message", "dequeue")
    arguments = (QUEUE, flag("--delete", help="Delete the message instead of archiving it."))

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        name = options["queue"]
        consumer = ctx.consumer(name)
        with transaction.atomic(using=ctx.using):
            message = consumer.dequeue()
            if message is None:
                return Output(None, text=f"no ready message in queue {name!r}")
            settled = consumer.delete(message) if options["delete"] else consumer.archive(message)
        if not settled:  # pragma: no cover (the lease is ours inside the transaction)
            raise CommandError(f"lost the lease on message {message.id}", returncode=OPERATIONAL)
        row = message_row(message, queue=name)
        action = "deleted" if options["delete"] else "archived"
        return Output(row, text=f"{render_record(row)}\n\nmessage {message.id} {action}")


class MessageDelete(Subcommand):
    """Delete an active message by id (leased or not), without archiving it.

    example: manage.py pgqrs message delete emails 42
    """

    path = ("message", "delete")
    arguments = (QUEUE, MESSAGE_ID)

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        name, msg_id = options["queue"], options["id"]
        if not ctx.admin.delete_messages(name, [msg_id]):
            raise MessageNotFound(name, msg_id)
        text = f"deleted message {msg_id} from queue {name!r}"
        return Output({"queue": name, "id": msg_id, "deleted": True}, text=text)


class MessageCount(Subcommand):
    """Count active messages (ready, delayed, in flight), or archived ones (--archive).

    example: manage.py pgqrs message count emails
    """

    path = ("message", "count")
    arguments = (QUEUE, flag("--archive", help="Count archived messages, by outcome."))

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        m = ctx.admin.queue_metrics(options["queue"])
        if options["archive"]:
            counts = {"count": m.archived, "succeeded": m.succeeded, "failed": m.failed}
            counts.update(dead=m.dead, cancelled=m.cancelled)
        else:
            counts = {"count": m.pending, "ready": m.ready, "delayed": m.delayed}
            counts.update(in_flight=m.in_flight)
        return Output({"queue": m.name, "archive": options["archive"], **counts})


class MessageShow(Subcommand):
    """Show one message by id (--archive: an archived one).

    example: manage.py pgqrs message show emails 42
    """

    path = ("message", "show")
    arguments = (
        QUEUE,
        MESSAGE_ID,
        flag("--archive", help="Look in the archive instead."),
    )

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        name = options["queue"]
        row = ctx.admin.get_message(name, options["id"], archived=options["archive"])
        if options["archive"]:
            return Output(archive_row(row, queue=name))  # type: ignore[arg-type]
        return Output(message_row(row, queue=name))  # type: ignore[arg-type]


class MessageReplay(Subcommand):
    """Put an archived dead or failed message back in its queue, ready now.

    example: manage.py pgqrs message replay emails 42
    """

    path = ("message", "replay")
    arguments = (
        QUEUE,
        arg("id", metavar="ID", type=message_id, help="Archived message id."),
    )

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        name = options["queue"]
        return Output(message_row(ctx.admin.replay_dead(name, options["id"]), queue=name))


SUBCOMMANDS: list[type[Subcommand]] = [
    MessageSend,
    MessageRead,
    MessageDequeue,
    MessageDelete,
    MessageCount,
    MessageShow,
    MessageReplay,
]
