"""``pgqrs archive ...``: list and purge archived messages."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from pgqrs_django.formatting import ARCHIVE_COLUMNS, archive_row, format_seconds

from .base import Context, Subcommand, add_queue_argument
from .output import Output
from .types import count, duration, offset


class ArchiveList(Subcommand):
    path = ("archive", "list")
    help = "List archived messages, most recently archived first."
    example = "manage.py pgqrs archive list emails --limit 20"

    def add_arguments(self, parser: CommandParser) -> None:
        add_queue_argument(parser)
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
        add_queue_argument(parser)
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


SUBCOMMANDS: list[type[Subcommand]] = [ArchiveList, ArchivePurge]
