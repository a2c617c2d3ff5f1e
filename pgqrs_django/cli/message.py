"""``pgqrs message ...``: send, read, inspect and delete messages."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from typing import IO, Any, cast

from django.core.management.base import CommandError, CommandParser
from django.db import transaction

from pgqrs_django.exceptions import InvalidInput, MessageNotFound
from pgqrs_django.formatting import (
    ARCHIVE_COLUMNS,
    MESSAGE_COLUMNS,
    Progress,
    archive_row,
    message_row,
    render_record,
)
from pgqrs_django.validation import serialize_payload

from .base import Context, Subcommand, add_queue_argument
from .errors import UsageError, one_line
from .output import Output
from .types import TOO_DEEP, count, duration, integer, json_document, message_id

logger = logging.getLogger(__name__)

#: Default and largest ``message send --file`` batch (one ``batch_enqueue`` round trip each).
DEFAULT_FILE_BATCH = 1000
MAX_FILE_BATCH = 10_000


class MessageSend(Subcommand):
    path = ("message", "send")
    help = "Enqueue a JSON message, or one message per line of a file (--file)."
    description = (
        "Enqueue one message whose payload is the JSON argument, or, with --file, one message "
        "per non-blank line of a file or of standard input (--file -). A file is enqueued in "
        "batches of --batch-size messages (one round trip each) inside one transaction: a bad "
        "line anywhere enqueues nothing. A progress bar is drawn when stderr is a terminal."
    )
    example = """manage.py pgqrs message send emails '{"to": "ada@example.com"}' --priority 5"""

    def add_arguments(self, parser: CommandParser) -> None:
        add_queue_argument(parser)
        parser.add_argument(
            "payload",
            metavar="JSON",
            type=json_document,
            nargs="?",
            help="The payload, a JSON document (omit it with --file).",
        )
        parser.add_argument(
            "--delay",
            type=duration,
            metavar="DURATION",
            help="Keep the message invisible this long (default: visible at once).",
        )
        parser.add_argument(
            "--priority",
            type=integer,
            default=0,
            metavar="P",
            help="Priority, a 32-bit integer; higher is claimed first (default: 0).",
        )
        parser.add_argument(
            "--dedupe-key",
            metavar="KEY",
            help="Refuse the message (exit 2) if an active message of the queue has this key.",
        )
        parser.add_argument(
            "--file",
            metavar="PATH",
            help="Read one JSON document per line from PATH ('-' for standard input).",
        )
        parser.add_argument(
            "--batch-size",
            type=count,
            default=DEFAULT_FILE_BATCH,
            metavar="N",
            help=f"Messages per round trip with --file (default: {DEFAULT_FILE_BATCH}, "
            f"at most {MAX_FILE_BATCH}).",
        )

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        name = options["queue"]
        if options["file"] is None:
            if options["payload"] is None:
                raise UsageError("message send: give a JSON payload or --file PATH")
            message = ctx.producer(name).enqueue(
                options["payload"].value,
                delay=options["delay"],
                priority=options["priority"],
                dedupe_key=options["dedupe_key"],
            )
            return Output(message_row(message, queue=name))
        if options["payload"] is not None:
            raise UsageError("message send: give a JSON payload or --file, not both")
        if options["dedupe_key"] is not None:
            raise UsageError("message send: --dedupe-key applies to one message, not to --file")
        if options["batch_size"] > MAX_FILE_BATCH:
            raise UsageError(f"message send: --batch-size must be <= {MAX_FILE_BATCH}")
        return self._send_file(ctx, options)

    def _open(self, ctx: Context, path: str) -> tuple[IO[bytes] | IO[str], int | None]:
        if path == "-":
            return getattr(ctx.stdin, "buffer", ctx.stdin), None
        try:
            stream = open(path, "rb")  # noqa: SIM115 (closed by the caller)
        except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
            reason = exc.strerror if isinstance(exc, OSError) else str(exc)
            raise UsageError(f"cannot read {one_line(path)[:60]!r}: {reason}") from None
        return stream, os.fstat(stream.fileno()).st_size

    def _lines(self, stream: IO[bytes] | IO[str]) -> Iterator[tuple[int, Any, int]]:
        """(line number, payload, bytes read so far) for each non-blank line."""
        read = 0
        lines = cast(Iterable[bytes | str], stream)
        for number, raw in enumerate(lines, 1):
            data = raw.encode("utf-8") if isinstance(raw, str) else raw
            read += len(data)
            if not data.strip():
                continue
            try:
                payload = json.loads(data.decode("utf-8"))
            except UnicodeDecodeError:
                raise UsageError(f"line {number}: not valid UTF-8") from None
            except ValueError as exc:
                raise UsageError(f"line {number}: invalid JSON: {exc}") from None
            except RecursionError:
                raise UsageError(f"line {number}: {TOO_DEEP}") from None
            yield number, payload, read

    def _send_file(self, ctx: Context, options: dict[str, Any]) -> Output:
        name = options["queue"]
        ctx.admin.get_queue(name)  # an unknown queue fails before any line is read
        producer = ctx.producer(name)
        stream, size = self._open(ctx, options["file"])
        progress = Progress(ctx.raw_stderr, "sending") if ctx.stderr.isatty() else None
        sent = 0
        first_id: int | None = None
        last_id: int | None = None
        batch: list[Any] = []
        numbers: list[int] = []

        def flush(read: int) -> None:
            nonlocal sent, first_id, last_id
            try:
                messages = producer.batch_enqueue(
                    batch, delay=options["delay"], priority=options["priority"]
                )
            except InvalidInput as exc:
                raise UsageError(f"line {self._bad_line(batch, numbers)}: {exc}") from None
            sent += len(messages)
            if messages:
                first_id = messages[0].id if first_id is None else first_id
                last_id = messages[-1].id
            logger.debug("enqueued %d messages on %r (%d so far)", len(messages), name, sent)
            batch.clear()
            numbers.clear()
            if progress is not None:
                progress.update(sent, read / size if size else None)

        try:
            with transaction.atomic(using=ctx.using):
                read = 0
                for number, payload, read in self._lines(stream):
                    batch.append(payload)
                    numbers.append(number)
                    if len(batch) >= options["batch_size"]:
                        flush(read)
                if batch:
                    flush(read)
        finally:
            if stream is not getattr(ctx.stdin, "buffer", ctx.stdin):
                stream.close()
            if progress is not None:
                progress.close(sent, 1.0 if size else None)
        return Output(
            {"queue": name, "sent": sent, "first_id": first_id, "last_id": last_id},
            text=f"sent {sent} messages to queue {name!r}"
            + (f" (ids {first_id}..{last_id})" if sent else ""),
        )

    @staticmethod
    def _bad_line(batch: list[Any], numbers: list[int]) -> int:
        """The line number of the first payload of ``batch`` the API's validation rejects."""
        for payload, number in zip(batch, numbers, strict=True):
            try:
                serialize_payload(payload)
            except InvalidInput:
                return number
        return numbers[0]


class MessageRead(Subcommand):
    path = ("message", "read")
    help = "Claim messages under a lease and print them (--archive: list archived ones)."
    description = (
        "Claim up to --count ready messages (default 1) and print them. They stay leased "
        "(invisible to workers) for --lock-time, then become ready again unless settled. With "
        "--archive, list the --count most recently archived messages instead (default 20); "
        "nothing is claimed."
    )
    example = "manage.py pgqrs message read emails --count 10 --lock-time 1m"

    def add_arguments(self, parser: CommandParser) -> None:
        add_queue_argument(parser)
        parser.add_argument(
            "--count",
            type=count,
            metavar="N",
            help="How many messages (default: 1, or 20 with --archive; at most 10,000).",
        )
        parser.add_argument(
            "--lock-time",
            type=duration,
            metavar="DURATION",
            help="Lease length (default: the queue's visibility timeout).",
        )
        parser.add_argument(
            "--archive", action="store_true", help="List archived messages; claim nothing."
        )

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        name = options["queue"]
        if options["archive"]:
            if options["lock_time"] is not None:
                raise UsageError("message read: --lock-time does not apply with --archive")
            rows = ctx.admin.list_archive(name, limit=options["count"] or 20)
            data = [archive_row(r, queue=name) for r in rows]
            return Output(data, columns=ARCHIVE_COLUMNS, empty=f"no archived messages in {name!r}")
        messages = ctx.consumer(name).dequeue_batch(
            options["count"] or 1, lock_time=options["lock_time"]
        )
        data = [message_row(m, queue=name) for m in messages]
        return Output(data, columns=MESSAGE_COLUMNS, empty=f"no ready message in queue {name!r}")


class MessageDequeue(Subcommand):
    path = ("message", "dequeue")
    help = "Take the next ready message: claim it, archive it (or --delete it), print it."
    description = (
        "Claim the next ready message (highest priority, then oldest) and settle it at once, "
        "in one transaction: archive it with outcome 'succeeded', or delete it with --delete. "
        "Prints the message as it was claimed (JSON: null when the queue has none ready)."
    )
    example = "manage.py pgqrs message dequeue emails"

    def add_arguments(self, parser: CommandParser) -> None:
        add_queue_argument(parser)
        parser.add_argument(
            "--delete", action="store_true", help="Delete the message instead of archiving it."
        )

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        name = options["queue"]
        consumer = ctx.consumer(name)
        with transaction.atomic(using=ctx.using):
            message = consumer.dequeue()
            if message is None:
                return Output(None, text=f"no ready message in queue {name!r}")
            settled = consumer.delete(message) if options["delete"] else consumer.archive(message)
        if not settled:  # pragma: no cover (the lease is ours inside the transaction)
            raise CommandError(f"lost the lease on message {message.id}", returncode=1)
        row = message_row(message, queue=name)
        action = "deleted" if options["delete"] else "archived"
        return Output(row, text=f"{render_record(row)}\n\nmessage {message.id} {action}")


class MessageDelete(Subcommand):
    path = ("message", "delete")
    help = "Delete an active message by id (leased or not), without archiving it."
    example = "manage.py pgqrs message delete emails 42"

    def add_arguments(self, parser: CommandParser) -> None:
        add_queue_argument(parser)
        parser.add_argument("id", metavar="ID", type=message_id, help="Message id.")

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        name, msg_id = options["queue"], options["id"]
        if not ctx.admin.delete_messages(name, [msg_id]):
            raise MessageNotFound(name, msg_id)
        return Output(
            {"queue": name, "id": msg_id, "deleted": True},
            text=f"deleted message {msg_id} from queue {name!r}",
        )


class MessageCount(Subcommand):
    path = ("message", "count")
    help = "Count active messages (ready, delayed, in flight), or archived ones (--archive)."
    example = "manage.py pgqrs message count emails"

    def add_arguments(self, parser: CommandParser) -> None:
        add_queue_argument(parser)
        parser.add_argument(
            "--archive", action="store_true", help="Count archived messages, by outcome."
        )

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        m = ctx.admin.queue_metrics(options["queue"])
        if options["archive"]:
            data = {
                "queue": m.name,
                "archive": True,
                "count": m.archived,
                "succeeded": m.succeeded,
                "failed": m.failed,
                "dead": m.dead,
                "cancelled": m.cancelled,
            }
        else:
            data = {
                "queue": m.name,
                "archive": False,
                "count": m.pending,
                "ready": m.ready,
                "delayed": m.delayed,
                "in_flight": m.in_flight,
            }
        return Output(data)


class MessageShow(Subcommand):
    path = ("message", "show")
    help = "Show one message by id (--archive: an archived one)."
    example = "manage.py pgqrs message show emails 42"

    def add_arguments(self, parser: CommandParser) -> None:
        add_queue_argument(parser)
        parser.add_argument("id", metavar="ID", type=message_id, help="Message id.")
        parser.add_argument("--archive", action="store_true", help="Look in the archive instead.")

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        name = options["queue"]
        row = ctx.admin.get_message(name, options["id"], archived=options["archive"])
        if options["archive"]:
            return Output(archive_row(row, queue=name))  # type: ignore[arg-type]
        return Output(message_row(row, queue=name))  # type: ignore[arg-type]


class MessageReplay(Subcommand):
    path = ("message", "replay")
    help = "Put an archived dead or failed message back in its queue, ready now."
    example = "manage.py pgqrs message replay emails 42"

    def add_arguments(self, parser: CommandParser) -> None:
        add_queue_argument(parser)
        parser.add_argument("id", metavar="ID", type=message_id, help="Archived message id.")

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
