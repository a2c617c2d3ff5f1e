"""What every ``manage.py pgqrs`` subcommand shares: the :class:`Subcommand` base class, the
:class:`Context` it runs in, and the positional arguments several of them take."""

from __future__ import annotations

import dataclasses
import inspect
import os
from pathlib import Path
from typing import IO, Any, ClassVar

from django.core.management.base import CommandError, CommandParser, OutputWrapper
from django.db import connections

from pgqrs_django import conf
from pgqrs_django.admin_api import PgqrsAdmin
from pgqrs_django.consumer import Consumer
from pgqrs_django.producer import Producer

from .errors import UsageError, one_line
from .output import Output
from .types import duration, message_id, queue_name, worker_ref

#: Seconds libpq may spend connecting when the project configures no ``connect_timeout``
#: (in the database OPTIONS or ``PGCONNECT_TIMEOUT``): an unreachable server fails fast.
CONNECT_TIMEOUT = 3


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


def database(alias: str | None) -> str:
    """The ``--database`` alias (default: ``PGQRS["DATABASE"]``), checked to be a PostgreSQL
    one, with a connect timeout so that an unreachable server fails within seconds."""
    using = alias or conf.database()
    if using not in connections.settings:
        known = ", ".join(sorted(connections.settings))
        raise UsageError(f"unknown database alias {one_line(using)[:60]!r} (known: {known})")
    connection = connections[using]
    if connection.vendor != "postgresql":
        raise UsageError(
            f"database {using!r} uses the {connection.vendor} backend; pgqrs needs PostgreSQL"
        )
    options = connection.settings_dict.setdefault("OPTIONS", {})
    if "connect_timeout" not in options and "PGCONNECT_TIMEOUT" not in os.environ:
        options["connect_timeout"] = CONNECT_TIMEOUT
    return using


@dataclasses.dataclass(frozen=True)
class Arg:
    """One argument of a subcommand: what ``parser.add_argument()`` is given."""

    flags: tuple[str, ...]
    options: dict[str, Any]


def arg(*flags: str, **options: Any) -> Arg:
    return Arg(flags, options)


def flag(*flags: str, help: str) -> Arg:
    """An on/off flag (``store_true``)."""
    return arg(*flags, action="store_true", help=help)


def duration_option(flag: str, help: str, **options: Any) -> Arg:
    """A flag that takes a duration (seconds, or 500ms, 90s, 30m, 12h, 7d, 2w, 1h30m)."""
    return arg(flag, type=duration, metavar="DURATION", help=help, **options)


QUEUE = arg("queue", metavar="QUEUE", type=queue_name, help="Queue name.")
WORKER = arg("worker", metavar="WORKER", type=worker_ref, help="Worker id (digits) or name.")
MESSAGE_ID = arg("id", metavar="ID", type=message_id, help="Message id.")


class Subcommand:
    """One ``manage.py pgqrs <group> <name>`` (or ``pgqrs <name>``).

    A subclass's docstring is its help, as click does it: the first line is the summary in
    the list of commands; the paragraphs after it, if any, describe it in its own ``--help``;
    a last paragraph ``example: ...`` is the example shown there.
    """

    path: ClassVar[tuple[str, ...]]
    arguments: ClassVar[tuple[Arg, ...]] = ()

    @classmethod
    def texts(cls) -> tuple[str, str, str | None]:
        """The summary, the description and the example, from the docstring."""
        paragraphs = inspect.cleandoc(cls.__doc__ or "").split("\n\n")
        example = None
        if paragraphs[-1].startswith("example: "):
            example = paragraphs.pop().removeprefix("example: ")
        summary = " ".join(paragraphs[0].split())
        return summary, "\n\n".join(paragraphs[1:]) or summary, example

    def add_arguments(self, parser: CommandParser) -> None:
        """Add this subcommand's own arguments."""
        for argument in self.arguments:
            parser.add_argument(*argument.flags, **argument.options)

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        raise NotImplementedError
