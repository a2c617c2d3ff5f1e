"""``manage.py pgqrs``: the operator CLI (every pgqrs command, as subcommands).

The command only parses arguments and formats results: every action goes through
``PgqrsAdmin``, ``Producer`` or ``Consumer``. Each subcommand is a small class below; the
reference with examples is docs/cli.md.

Exit codes: 0 success; 1 operational failure (database unreachable, tables missing, ``verify``
or ``worker health`` found problems); 2 usage or input error. Errors are one line on stderr,
never a traceback (unless ``--traceback`` is given), and bad input changes nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import math
import os
import re
import sys
import textwrap
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, ClassVar, NoReturn, cast

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import (
    BaseCommand,
    CommandError,
    CommandParser,
    DjangoHelpFormatter,
    OutputWrapper,
    handle_default_options,
)
from django.db import (
    DatabaseError,
    DataError,
    InterfaceError,
    OperationalError,
    connections,
    transaction,
)

from pgqrs_django import conf, exceptions
from pgqrs_django.admin_api import PgqrsAdmin
from pgqrs_django.consumer import Consumer
from pgqrs_django.exceptions import (
    DuplicateMessage,
    InvalidInput,
    MessageNotFound,
    NotInstalled,
    PgqrsError,
    QueueAlreadyExists,
    QueueNotFound,
    WorkerNotFound,
)
from pgqrs_django.formatting import (
    ARCHIVE_COLUMNS,
    MESSAGE_COLUMNS,
    METRICS_COLUMNS,
    QUEUE_COLUMNS,
    WORKER_COLUMNS,
    Column,
    Progress,
    archive_row,
    format_bytes,
    format_cell,
    format_seconds,
    message_row,
    metrics_row,
    queue_row,
    render_json,
    render_record,
    render_table,
    worker_row,
)
from pgqrs_django.producer import Producer
from pgqrs_django.validation import serialize_payload, validate_queue_name

logger = logging.getLogger(__name__)

#: Seconds libpq may spend connecting when the project configures no ``connect_timeout``
#: (in the database OPTIONS or ``PGCONNECT_TIMEOUT``): an unreachable server fails fast.
CONNECT_TIMEOUT = 3
#: Default and largest ``message send --file`` batch (one ``batch_enqueue`` round trip each).
DEFAULT_FILE_BATCH = 1000
MAX_FILE_BATCH = 10_000
#: Error lines longer than this are cut (a 10,000-character name must not flood the terminal).
MAX_ERROR_CHARS = 500
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")

# Errors the caller caused (exit 2) and errors of the system (exit 1): the one mapping.
INPUT_ERRORS: tuple[type[Exception], ...] = (
    InvalidInput,
    QueueNotFound,
    MessageNotFound,
    WorkerNotFound,
    DuplicateMessage,
    QueueAlreadyExists,
)
OPERATIONAL_ERRORS: tuple[type[Exception], ...] = (
    NotInstalled,
    OperationalError,
    InterfaceError,
    DatabaseError,
    PgqrsError,
    ImproperlyConfigured,
)


class UsageError(CommandError):
    """A usage or input error: exit code 2."""

    def __init__(self, message: str) -> None:
        super().__init__(message, returncode=2)


def one_line(text: object) -> str:
    """``text`` on one line, cut to ``MAX_ERROR_CHARS``."""
    return exceptions.one_line(text, limit=MAX_ERROR_CHARS)


def command_error(exc: BaseException, database: str) -> CommandError | None:
    """The CommandError (message and exit code) for an exception an action raised, or None
    for an unexpected one."""
    if isinstance(exc, CommandError):
        return exc
    if isinstance(exc, INPUT_ERRORS):
        return CommandError(one_line(exc), returncode=2)
    if isinstance(exc, DataError):  # PostgreSQL refused a value (class 22): the input's fault
        return CommandError(f"invalid value: {one_line(exc)}", returncode=2)
    if isinstance(exc, DatabaseError) and "does not exist" in str(exc):
        return CommandError(
            f"the pgqrs tables do not exist on database {database!r}: "
            "run `manage.py pgqrs install` (or `manage.py migrate`)",
            returncode=1,
        )
    if isinstance(exc, DatabaseError):
        return CommandError(f"database {database!r}: {one_line(exc)}", returncode=1)
    if isinstance(exc, OPERATIONAL_ERRORS):
        return CommandError(one_line(exc), returncode=1)
    return None


class CliParser(CommandParser):
    """Django's parser, except that a usage error raises :class:`UsageError` (one line,
    exit 2) instead of printing the usage text, however the command was called."""

    command_path = ""

    def error(self, message: str) -> NoReturn:
        where = f"{self.command_path}: " if self.command_path else ""
        raise UsageError(f"{where}{message} (see --help)")


class HelpFormatter(DjangoHelpFormatter):
    """Wraps descriptions paragraph by paragraph, keeps indented lines (examples) as they
    are, and never breaks a flag name at its hyphen."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = []
        for paragraph in text.split("\n\n"):
            if paragraph.startswith("  ") or "\n  " in paragraph:
                paragraphs.append("\n".join(indent + line for line in paragraph.splitlines()))
            else:
                paragraphs.append(super()._fill_text(paragraph, width, indent))
        return "\n\n".join(paragraphs)


# -- argument types: bad values are usage errors, found before anything runs -----------------

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)\s*(w|d|h|m|s|ms)?", re.IGNORECASE)
_DURATION_UNITS = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def duration(text: str) -> float:
    """Seconds from ``90``, ``1.5``, ``90s``, ``30m``, ``12h``, ``7d``, ``2w``, ``1h30m``."""
    raw = text.strip()
    pos, total, parts = 0, 0.0, 0
    while pos < len(raw):
        match = _DURATION_PART.match(raw, pos)
        if match is None:
            break
        unit = (match.group(2) or "s").lower()
        if parts and match.group(2) is None:
            break  # "1h30" is ambiguous
        total += float(match.group(1)) * _DURATION_UNITS[unit]
        parts += 1
        pos = match.end()
        while pos < len(raw) and raw[pos] == " ":
            pos += 1
    if not parts or pos != len(raw) or not math.isfinite(total):
        raise argparse.ArgumentTypeError(
            f"{one_line(text)[:40]!r} is not a duration >= 0: use seconds (30, 1.5) or "
            "a number with a unit: 500ms, 90s, 30m, 12h, 7d, 2w, 1h30m"
        )
    return total


def _whole_number(text: str, minimum: int) -> int:
    try:
        value = int(text.strip(), 10)
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise argparse.ArgumentTypeError(
            f"must be a whole number >= {minimum}, not {one_line(text)[:40]!r}"
        )
    return value


def count(text: str) -> int:
    """A whole number >= 1."""
    return _whole_number(text, 1)


def offset(text: str) -> int:
    """A whole number >= 0."""
    return _whole_number(text, 0)


def integer(text: str) -> int:
    """Any whole number (priorities may be negative)."""
    try:
        return int(text.strip(), 10)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a whole number, not {one_line(text)[:40]!r}"
        ) from None


def message_id(text: str) -> int:
    """A message id: a whole number >= 1."""
    return _whole_number(text, 1)


def queue_name(text: str) -> str:
    """A valid queue name (checked by the same rule as the API)."""
    try:
        return validate_queue_name(text)
    except InvalidInput as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


#: json.loads gives up on documents nested thousands deep; no payload may nest that deep.
TOO_DEEP = "nests too deep to parse (far over MAX_PAYLOAD_DEPTH)"


@dataclasses.dataclass(frozen=True)
class Document:
    """A parsed JSON argument (a wrapper, so that the document ``null`` differs from "no
    argument given")."""

    value: Any


def json_document(text: str) -> Document:
    """A JSON document (the message payload)."""
    try:
        return Document(json.loads(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"invalid JSON payload: {exc}") from None
    except RecursionError:
        raise argparse.ArgumentTypeError(f"JSON payload {TOO_DEEP}") from None


def worker_ref(text: str) -> int | str:
    """A worker id (digits) or name."""
    if not text or "\x00" in text:
        raise argparse.ArgumentTypeError("a worker id or name cannot be empty or hold NUL")
    return int(text) if text.isascii() and text.isdigit() else text


# -- output ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Output:
    """What a subcommand produced.

    ``data`` is printed by ``--format json``. The table format prints ``text`` if given, else
    ``rows`` (or ``data``) as a table of ``columns``, else ``data`` as key/value lines.
    ``failure`` makes the command exit 1 with that line on stderr, after the output.
    """

    data: Any
    text: str | None = None
    columns: Sequence[Column] | None = None
    rows: Sequence[Mapping[str, Any]] | None = None
    empty: str = "nothing to show"
    failure: str | None = None

    def render(self, fmt: str) -> str:
        if fmt == "json":
            return render_json(self.data)
        if self.text is not None:
            return self.text
        if self.columns is not None:
            rows = self.rows if self.rows is not None else self.data
            return render_table(rows, self.columns) if rows else self.empty
        if isinstance(self.data, Mapping):
            return render_record(self.data)
        return self.empty if self.data is None else format_cell(self.data)


@dataclasses.dataclass
class Context:
    """What every subcommand needs: the database alias, the API objects bound to it, the
    streams, and where the output goes."""

    using: str
    format: str
    out: Path | None
    stdout: OutputWrapper
    stderr: OutputWrapper
    stdin: IO[str]
    raw_stderr: IO[str]

    @property
    def admin(self) -> PgqrsAdmin:
        return PgqrsAdmin(using=self.using)

    def producer(self, queue: str) -> Producer:
        return Producer(queue, using=self.using)

    def consumer(self, queue: str) -> Consumer:
        return Consumer(queue, using=self.using)

    def emit(self, output: Output) -> None:
        text = output.render(self.format)
        if self.out is None:
            self.stdout.write(text)
            return
        try:
            self.out.write_text(text + "\n", encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"cannot write {str(self.out)!r}: {exc.strerror}") from None


def _database(alias: str | None) -> str:
    using = alias or conf.database()
    if using not in connections.settings:
        known = ", ".join(sorted(connections.settings))
        raise UsageError(f"unknown database alias {one_line(using)[:60]!r} (known: {known})")
    connection = connections[using]
    if connection.vendor != "postgresql":
        raise UsageError(
            f"database {using!r} uses the {connection.vendor} backend; pgqrs needs PostgreSQL"
        )
    # An unreachable server must fail within seconds, not hang on the OS connect timeout.
    options = connection.settings_dict.setdefault("OPTIONS", {})
    if "connect_timeout" not in options and "PGCONNECT_TIMEOUT" not in os.environ:
        options["connect_timeout"] = CONNECT_TIMEOUT
    return using


def _out_path(value: str | None) -> Path | None:
    """Check ``--out`` before anything runs, so a bad path changes nothing."""
    if value is None:
        return None
    if "\x00" in value:
        raise UsageError("--out: a path cannot hold a NUL character")
    path = Path(value)
    parent = path.parent if str(path.parent) else Path(".")
    if not value or path.is_dir():
        raise UsageError(f"--out {one_line(value)[:60]!r} is a directory, not a file")
    if not parent.is_dir():
        raise UsageError(f"--out {one_line(value)[:60]!r}: directory {str(parent)!r} not found")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"--out {one_line(value)[:60]!r} is not writable")
    return path


def _set_log_level(level: str | None) -> None:
    if level is None:
        return
    package = logging.getLogger("pgqrs_django")
    package.setLevel(level.upper())
    if not package.hasHandlers():
        package.addHandler(logging.StreamHandler(sys.stderr))


# -- subcommands ----------------------------------------------------------------------------


class Subcommand:
    """One ``manage.py pgqrs <group> <name>`` (or ``pgqrs <name>``)."""

    path: ClassVar[tuple[str, ...]]
    help: ClassVar[str]
    description: ClassVar[str] = ""
    example: ClassVar[str] = ""

    def add_arguments(self, parser: CommandParser) -> None:
        """Add this subcommand's own arguments."""

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        raise NotImplementedError


def _queue_arg(parser: CommandParser, help: str = "Queue name.") -> None:
    parser.add_argument("queue", metavar="QUEUE", type=queue_name, help=help)


class Install(Subcommand):
    path = ("install",)
    help = "Create the pgqrs tables (apply the app's migrations)."
    description = "Create the pgqrs tables on the database; does nothing if they exist."
    example = "manage.py pgqrs install"

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        ctx.admin.install()
        return Output(
            {"database": ctx.using, "installed": True},
            text=f"pgqrs is installed on database {ctx.using!r}",
        )


class Uninstall(Subcommand):
    path = ("uninstall",)
    help = "Drop the pgqrs tables and every message in them."
    description = (
        "Drop the pgqrs tables (unapply the app's migrations), deleting every queue, message, "
        "archived message and worker row. Asks for confirmation on a terminal; without a "
        "terminal it refuses (exit 2) unless --yes is given."
    )
    example = "manage.py pgqrs uninstall --yes"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("-y", "--yes", action="store_true", help="Do not ask for confirmation.")

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        if not options["yes"]:
            if not ctx.stdin.isatty():
                raise UsageError(
                    "uninstall deletes every queue and message: pass --yes to confirm "
                    "(standard input is not a terminal, so it cannot ask)"
                )
            ctx.stderr.write(
                f"This drops the pgqrs tables and every message in them on database "
                f"{ctx.using!r}. Type 'yes' to continue: ",
                ending="",
            )
            ctx.stderr.flush()
            if ctx.stdin.readline().strip().lower() not in ("y", "yes"):
                raise CommandError("uninstall cancelled: nothing changed", returncode=1)
        ctx.admin.uninstall()
        return Output(
            {"database": ctx.using, "uninstalled": True},
            text=f"pgqrs tables dropped from database {ctx.using!r}",
        )


class Verify(Subcommand):
    path = ("verify",)
    help = "Check the connection, migrations, tables and indexes (exit 1 on problems)."
    description = (
        "Check that the database is reachable PostgreSQL, the pgqrs migrations are applied and "
        "every table and index exists. Exits 1 when a problem is found."
    )
    example = "manage.py pgqrs verify"

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        report = ctx.admin.verify()
        data = {"database": ctx.using, **report.as_dict()}
        lines = [
            f"database  {ctx.using}",
            f"checked   {', '.join(report.checked) or '-'}",
            f"status    {'ok' if report.ok else 'FAILED'}",
            *(f"problem   {one_line(problem)}" for problem in report.problems),
        ]
        failure = None
        if not report.ok:
            failure = f"verify found {len(report.problems)} problem(s): " + "; ".join(
                report.problems
            )
        return Output(data, text="\n".join(lines), failure=failure)


class QueueCreate(Subcommand):
    path = ("queue", "create")
    help = "Create a queue."
    example = "manage.py pgqrs queue create emails --visibility-timeout 30s --max-attempts 5"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "name",
            metavar="NAME",
            type=queue_name,
            help="Queue name: 1-128 letters, digits, '_', '-' or '.'.",
        )
        parser.add_argument(
            "--visibility-timeout",
            type=duration,
            metavar="DURATION",
            help="Lease length of a claimed message (default: PGQRS['DEFAULT_LOCK_TIME']).",
        )
        parser.add_argument(
            "--max-attempts",
            type=count,
            metavar="N",
            help="Deliveries before a failing message is dead-lettered "
            "(default: PGQRS['MAX_ATTEMPTS']).",
        )
        parser.add_argument(
            "--dead-letter-queue",
            type=queue_name,
            metavar="QUEUE",
            help="Existing queue that receives messages whose attempts run out (default: "
            "none, they are archived as 'dead').",
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
    path = ("queue", "list")
    help = "List queues."
    example = "manage.py pgqrs queue list"

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        rows = [queue_row(q) for q in ctx.admin.list_queues()]
        return Output(rows, columns=QUEUE_COLUMNS, empty="no queues")


class QueueGet(Subcommand):
    path = ("queue", "get")
    help = "Show one queue's settings."
    example = "manage.py pgqrs queue get emails"

    def add_arguments(self, parser: CommandParser) -> None:
        _queue_arg(parser)

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        return Output(queue_row(ctx.admin.get_queue(options["queue"])))


class QueueDelete(Subcommand):
    path = ("queue", "delete")
    help = "Delete a queue with its active and archived messages."
    example = "manage.py pgqrs queue delete old-emails"

    def add_arguments(self, parser: CommandParser) -> None:
        _queue_arg(parser)

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        name = options["queue"]
        deleted = ctx.admin.delete_queue(name)
        return Output(
            {"queue": name, "deleted": True, **deleted},
            text=f"deleted queue {name!r} with {deleted['messages']} active and "
            f"{deleted['archived']} archived messages",
        )


class QueuePurge(Subcommand):
    path = ("queue", "purge")
    help = "Delete every active message of a queue (the archive is kept)."
    example = "manage.py pgqrs queue purge emails"

    def add_arguments(self, parser: CommandParser) -> None:
        _queue_arg(parser)

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        name = options["queue"]
        deleted = ctx.admin.purge_queue(name)
        return Output(
            {"queue": name, "deleted": deleted},
            text=f"deleted {deleted} active messages from queue {name!r}",
        )


class QueueMetricsCommand(Subcommand):
    path = ("queue", "metrics")
    help = "Counts per queue: ready, delayed, in flight, archived by outcome, oldest age."
    description = (
        "Show the metrics of one queue (JSON: an object) or of every queue (JSON: a list)."
    )
    example = "manage.py pgqrs queue metrics"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "queue",
            metavar="QUEUE",
            type=queue_name,
            nargs="?",
            help="Queue name (default: every queue).",
        )

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        if options["queue"] is not None:
            row = metrics_row(ctx.admin.queue_metrics(options["queue"]))
            return Output(row, columns=METRICS_COLUMNS, rows=[row])
        rows = [metrics_row(m) for m in ctx.admin.all_queues_metrics()]
        return Output(rows, columns=METRICS_COLUMNS, empty="no queues")


class _SetPaused(Subcommand):
    paused: ClassVar[bool]

    def add_arguments(self, parser: CommandParser) -> None:
        _queue_arg(parser)

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        queue = ctx.admin.set_paused(options["queue"], self.paused)
        state = "paused" if self.paused else "resumed"
        return Output(queue_row(queue), text=f"queue {queue.name!r} {state}")


class QueuePause(_SetPaused):
    path = ("queue", "pause")
    help = "Pause a queue: it accepts messages but hands none out."
    example = "manage.py pgqrs queue pause emails"
    paused = True


class QueueResume(_SetPaused):
    path = ("queue", "resume")
    help = "Resume a paused queue."
    example = "manage.py pgqrs queue resume emails"
    paused = False


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
        _queue_arg(parser)
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
        _queue_arg(parser)
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
        _queue_arg(parser)
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
        _queue_arg(parser)
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
        _queue_arg(parser)
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
        _queue_arg(parser)
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
        _queue_arg(parser)
        parser.add_argument("id", metavar="ID", type=message_id, help="Archived message id.")

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        name = options["queue"]
        return Output(message_row(ctx.admin.replay_dead(name, options["id"]), queue=name))


class ArchiveList(Subcommand):
    path = ("archive", "list")
    help = "List archived messages, most recently archived first."
    example = "manage.py pgqrs archive list emails --limit 20"

    def add_arguments(self, parser: CommandParser) -> None:
        _queue_arg(parser)
        parser.add_argument(
            "--limit",
            type=count,
            default=50,
            metavar="N",
            help="How many (default: 50, at most 10,000).",
        )
        parser.add_argument(
            "--offset", type=offset, default=0, metavar="N", help="Skip this many (default: 0)."
        )

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        name = options["queue"]
        rows = ctx.admin.list_archive(name, limit=options["limit"], offset=options["offset"])
        data = [archive_row(r, queue=name) for r in rows]
        return Output(data, columns=ARCHIVE_COLUMNS, empty=f"no archived messages in {name!r}")


class ArchivePurge(Subcommand):
    path = ("archive", "purge")
    help = "Delete archived messages of a queue: all, or those older than --older-than."
    example = "manage.py pgqrs archive purge emails --older-than 7d"

    def add_arguments(self, parser: CommandParser) -> None:
        _queue_arg(parser)
        parser.add_argument(
            "--older-than",
            type=duration,
            metavar="DURATION",
            help="Only rows archived longer ago than this (e.g. 3600, 12h, 7d).",
        )

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        name, age = options["queue"], options["older_than"]
        deleted = ctx.admin.purge_archive(name, older_than=age)
        scope = f" archived over {format_seconds(age)} ago" if age is not None else ""
        return Output(
            {"queue": name, "deleted": deleted, "older_than": age},
            text=f"deleted {deleted} archived messages{scope} from queue {name!r}",
        )


def _worker_ref_arg(parser: CommandParser) -> None:
    parser.add_argument(
        "worker", metavar="WORKER", type=worker_ref, help="Worker id (digits) or name."
    )


class WorkerList(Subcommand):
    path = ("worker", "list")
    help = "List workers with their status and heartbeat."
    example = "manage.py pgqrs worker list --running"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--queue", type=queue_name, metavar="QUEUE", help="Only workers serving this queue."
        )
        parser.add_argument(
            "--running", action="store_true", help="Only running workers (not stopped)."
        )

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        admin = ctx.admin
        workers = admin.list_workers(options["queue"], running_only=options["running"])
        stale = {w.pk for w in admin.stale_workers()}
        rows = [worker_row(w, stale=w.pk in stale) for w in workers]
        return Output(rows, columns=WORKER_COLUMNS, empty="no workers")


class WorkerShow(Subcommand):
    path = ("worker", "show")
    help = "Show one worker."
    example = "manage.py pgqrs worker show web-1"

    def add_arguments(self, parser: CommandParser) -> None:
        _worker_ref_arg(parser)

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        admin = ctx.admin
        worker = admin.get_worker(options["worker"])
        stale = any(w.pk == worker.pk for w in admin.stale_workers())
        return Output(worker_row(worker, stale=stale))


class _WorkerAction(Subcommand):
    #: The PgqrsAdmin method that acts on the worker, and what the table output says.
    method: ClassVar[str]
    done: ClassVar[str]

    def add_arguments(self, parser: CommandParser) -> None:
        _worker_ref_arg(parser)

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        worker = getattr(ctx.admin, self.method)(options["worker"])
        return Output(worker_row(worker), text=f"worker {worker.name!r} {self.done}")


class WorkerSuspend(_WorkerAction):
    path = ("worker", "suspend")
    help = "Ask a worker to stop claiming (it finishes what it holds and keeps heartbeating)."
    example = "manage.py pgqrs worker suspend web-1"
    method, done = "suspend_worker", "suspended"


class WorkerResume(_WorkerAction):
    path = ("worker", "resume")
    help = "Let a suspended worker claim again."
    example = "manage.py pgqrs worker resume web-1"
    method, done = "resume_worker", "resumed"


class WorkerShutdown(_WorkerAction):
    path = ("worker", "shutdown")
    help = "Ask a worker to stop gracefully at its next poll."
    example = "manage.py pgqrs worker shutdown web-1"
    method, done = "shutdown_worker", "asked to shut down"


class WorkerReclaim(Subcommand):
    path = ("worker", "reclaim")
    help = "Stop workers with a stale heartbeat and make their messages ready again."
    example = "manage.py pgqrs worker reclaim --timeout 2m"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--timeout",
            type=duration,
            metavar="DURATION",
            help="Heartbeat age that counts as dead (default: PGQRS['STALE_WORKER_TIMEOUT']).",
        )

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        result = ctx.admin.reclaim(options["timeout"])
        return Output(
            result.as_dict(),
            text=f"stopped {result.workers} stale workers; {result.messages} messages "
            "made ready again",
        )


class WorkerPurge(Subcommand):
    path = ("worker", "purge")
    help = "Delete rows of workers that stopped longer ago than --older-than."
    example = "manage.py pgqrs worker purge --older-than 30d"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=duration,
            default=7 * 86400.0,
            metavar="DURATION",
            help="Stopped for longer than this (default: 7d).",
        )

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        age = options["older_than"]
        deleted = ctx.admin.purge_old_workers(age)
        return Output(
            {"deleted": deleted, "older_than": age},
            text=f"deleted {deleted} workers stopped over {format_seconds(age)} ago",
        )


class WorkerHealth(Subcommand):
    path = ("worker", "health")
    help = "Exit 1 if a worker is stale or a queue with ready messages has no live worker."
    description = (
        "Healthy means: no running worker has a heartbeat older than the stale timeout, and "
        "every queue that has ready messages and is not paused is served by at least one "
        "worker whose status is 'ready' and whose heartbeat is fresh. Exits 1 otherwise, so "
        "it can serve as a liveness probe."
    )
    example = "manage.py pgqrs worker health"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--timeout",
            type=duration,
            metavar="DURATION",
            help="Heartbeat age that counts as stale (default: PGQRS['STALE_WORKER_TIMEOUT']).",
        )

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


class Stats(Subcommand):
    path = ("stats",)
    help = "Totals across queues, workers by status, and table sizes."
    example = "manage.py pgqrs stats"

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        data = {"database": ctx.using, **ctx.admin.system_stats().as_dict()}
        sizes = {table: format_bytes(size) for table, size in data["table_bytes"].items()}
        shown = {**data, "table_bytes": sizes}
        return Output(data, text=render_record(shown, nested=True))


SUBCOMMANDS: list[type[Subcommand]] = [
    Install,
    Uninstall,
    Verify,
    QueueCreate,
    QueueList,
    QueueGet,
    QueueDelete,
    QueuePurge,
    QueueMetricsCommand,
    QueuePause,
    QueueResume,
    MessageSend,
    MessageRead,
    MessageDequeue,
    MessageDelete,
    MessageCount,
    MessageShow,
    MessageReplay,
    ArchiveList,
    ArchivePurge,
    WorkerList,
    WorkerShow,
    WorkerSuspend,
    WorkerResume,
    WorkerShutdown,
    WorkerReclaim,
    WorkerPurge,
    WorkerHealth,
    Stats,
]

GROUPS = {
    "queue": "Create, inspect, pause and empty queues.",
    "message": "Send, read, inspect and delete messages.",
    "archive": "List and purge archived messages.",
    "worker": "Inspect and steer worker processes.",
}


def add_global_options(parser: CommandParser, *, top: bool) -> None:
    """The flags every subcommand takes. They may come before or after the subcommand; on
    the subcommands they default to "not given" so they never override the top level."""

    def default(value: Any) -> Any:
        return value if top else argparse.SUPPRESS

    parser.add_argument(
        "--format",
        choices=["table", "json"],
        default=default("table"),
        help="Output format: 'table' (aligned, for people; the default) or 'json' (stable "
        "keys, ISO 8601 times, for programs).",
    )
    parser.add_argument(
        "--out",
        metavar="PATH",
        default=default(None),
        help="Write the output to PATH instead of standard output.",
    )
    parser.add_argument(
        "--log-level",
        type=str.lower,
        choices=LOG_LEVELS,
        default=default(None),
        help="Log level of the pgqrs_django loggers, written to stderr (default: as the "
        "project's LOGGING configures them).",
    )
    parser.add_argument(
        "--database",
        metavar="ALIAS",
        default=default(None),
        help="Database alias to run on (default: PGQRS['DATABASE'], normally 'default').",
    )


class Command(BaseCommand):
    help = (
        "Operate the pgqrs job queue: install, verify, queues, messages, archive, workers. "
        "Exit codes: 0 success, 1 operational failure (database unreachable, tables missing, "
        "verify or health failed), 2 usage or input error."
    )
    # The CLI must work (and fail in one line) when the database is down or the project
    # has unrelated check errors; `verify` is the pgqrs check.
    requires_system_checks: ClassVar[list[str]] = []  # type: ignore[misc]
    stealth_options = ("stdin",)

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", HelpFormatter)
        kwargs.setdefault(
            "epilog",
            "Global flags may also follow the subcommand. Run `manage.py pgqrs COMMAND "
            "--help` for a command's flags; docs/cli.md has the reference with examples.",
        )
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        # Django builds a plain CommandParser; ours only changes how errors are reported.
        parser.__class__ = CliParser
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        add_global_options(parser, top=True)
        top = parser.add_subparsers(
            dest="command", metavar="COMMAND", required=True, parser_class=CliParser
        )
        groups: dict[str, Any] = {}
        for cls in SUBCOMMANDS:
            command = cls()
            *group_path, name = cls.path
            actions = top
            if group_path:
                group = group_path[0]
                if group not in groups:
                    group_parser = top.add_parser(
                        group,
                        help=GROUPS[group],
                        description=GROUPS[group],
                        epilog=f"Run `manage.py pgqrs {group} ACTION --help` for an action's "
                        "flags.",
                        allow_abbrev=False,
                        formatter_class=HelpFormatter,
                    )
                    group_parser.command_path = group
                    groups[group] = group_parser.add_subparsers(
                        dest="action", metavar="ACTION", required=True, parser_class=CliParser
                    )
                actions = groups[group]
            sub = actions.add_parser(
                name,
                help=cls.help,
                description=cls.description or cls.help,
                epilog=f"example:\n  {cls.example}" if cls.example else None,
                allow_abbrev=False,
                formatter_class=HelpFormatter,
            )
            sub.command_path = " ".join(cls.path)
            command.add_arguments(sub)
            add_global_options(sub, top=False)
            sub.set_defaults(subcommand=command)

    # -- running ------------------------------------------------------------------------

    def run_from_argv(self, argv: list[str]) -> None:
        try:
            code = self.main(argv)
        finally:
            with contextlib.suppress(ImproperlyConfigured):
                connections.close_all()
        if code:
            sys.exit(code)

    def main(self, argv: list[str]) -> int:
        """Run ``argv`` (``[prog, "pgqrs", *args]``) and return the exit code. Every error
        becomes one line on stderr; ``--traceback`` re-raises instead."""
        self._called_from_command_line = True
        traceback = "--traceback" in argv
        try:
            parser = self.create_parser(argv[0], argv[1])
            try:
                options = parser.parse_args(argv[2:])
            except SystemExit as exc:  # --help and --version
                return exc.code if isinstance(exc.code, int) else 0
            cmd_options = vars(options)
            args = cmd_options.pop("args", ())
            handle_default_options(options)
            self.execute(*args, **cmd_options)
            return 0
        except CommandError as exc:
            if traceback:
                raise
            self.stderr.write(f"pgqrs: error: {one_line(exc)}")
            return exc.returncode
        except KeyboardInterrupt:
            self.stderr.write("pgqrs: interrupted")
            return 1
        except BrokenPipeError:
            return 1
        except Exception as exc:
            if traceback:
                raise
            self.stderr.write(
                f"pgqrs: unexpected error: {type(exc).__name__}: {one_line(exc)} "
                "(run again with --traceback for details)"
            )
            return 1

    def handle(self, *args: Any, **options: Any) -> None:
        command: Subcommand = options["subcommand"]
        ctx = Context(
            using=_database(options["database"]),
            format=options["format"],
            out=_out_path(options["out"]),
            stdout=self.stdout,
            stderr=self.stderr,
            stdin=options.get("stdin") or sys.stdin,
            raw_stderr=options.get("stderr") or sys.stderr,
        )
        _set_log_level(options["log_level"])
        try:
            output = command.run(ctx, options)
        except Exception as exc:
            error = command_error(exc, ctx.using)
            if error is None:
                raise
            raise error from exc
        ctx.emit(output)
        if output.failure:
            raise CommandError(output.failure, returncode=1)
