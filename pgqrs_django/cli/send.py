"""``pgqrs message send``: one JSON message, or one message per line of a file."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from typing import IO, Any, cast

from django.db import transaction

from pgqrs_django.exceptions import InvalidInput
from pgqrs_django.formatting import Progress, message_row
from pgqrs_django.validation import serialize_payload

from .base import QUEUE, Context, Subcommand, arg, duration_option
from .errors import UsageError, one_line
from .output import Output
from .types import TOO_DEEP, count, integer, json_document

logger = logging.getLogger(__name__)

#: Default and largest ``message send --file`` batch (one ``batch_enqueue`` round trip each).
DEFAULT_FILE_BATCH = 1000
MAX_FILE_BATCH = 10_000


class MessageSend(Subcommand):
    """Enqueue a JSON message, or one message per line of a file (--file).

    Enqueue one message whose payload is the JSON argument, or, with --file, one message per
    non-blank line of a file or of standard input (--file -). A file is enqueued in batches
    of --batch-size messages (one round trip each) inside one transaction: a bad line
    anywhere enqueues nothing. A progress bar is drawn when stderr is a terminal.

    example: manage.py pgqrs message send emails '{"to": "ada@example.com"}' --priority 5
    """

    path = ("message", "send")
    arguments = (
        QUEUE,
        arg(
            "payload",
            metavar="JSON",
            type=json_document,
            nargs="?",
            help="The payload, a JSON document (omit it with --file).",
        ),
        duration_option(
            "--delay", "Keep the message invisible this long (default: visible at once)."
        ),
        arg(
            "--priority",
            type=integer,
            default=0,
            metavar="P",
            help="Priority, a 32-bit integer; higher is claimed first (default: 0).",
        ),
        arg(
            "--dedupe-key",
            metavar="KEY",
            help="Refuse the message (exit 2) if an active message of the queue has this key.",
        ),
        arg(
            "--file",
            metavar="PATH",
            help="Read one JSON document per line from PATH ('-' for standard input).",
        ),
        arg(
            "--batch-size",
            type=count,
            default=DEFAULT_FILE_BATCH,
            metavar="N",
            help=f"Messages per round trip with --file (default: {DEFAULT_FILE_BATCH}, "
            f"at most {MAX_FILE_BATCH}).",
        ),
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
