"""What every ``manage.py pgqrs`` subcommand shares: the :class:`Subcommand` base class, the
:class:`Context` it runs in, and the positional arguments several of them take."""

from __future__ import annotations

import dataclasses
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
from .types import queue_name, worker_ref

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


def add_queue_argument(parser: CommandParser, help: str = "Queue name.") -> None:
    parser.add_argument("queue", metavar="QUEUE", type=queue_name, help=help)


def add_worker_argument(parser: CommandParser) -> None:
    parser.add_argument(
        "worker", metavar="WORKER", type=worker_ref, help="Worker id (digits) or name."
    )
