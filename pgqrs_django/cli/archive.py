"""``pgqrs archive ...``: list and purge archived messages."""

from __future__ import annotations

from typing import Any

from pgqrs_django.formatting import ARCHIVE_COLUMNS, archive_row, format_seconds

from .base import QUEUE, Context, Subcommand, arg, duration_option
from .output import Output
from .types import count, offset


def archived(ctx: Context, queue: str, limit: int, offset: int = 0) -> Output:
    """The archived messages of ``queue``, most recently archived first."""
    rows = ctx.admin.list_archive(queue, limit=limit, offset=offset)
    data = [archive_row(row, queue=queue) for row in rows]
    return Output(data, columns=ARCHIVE_COLUMNS, empty=f"no archived messages in {queue!r}")


class ArchiveList(Subcommand):
    """List archived messages, most recently archived first.

    example: manage.py pgqrs archive list emails --limit 20
    """

    path = ("archive", "list")
    arguments = (
        QUEUE,
        arg(
            "--limit",
            type=count,
            default=50,
            metavar="N",
            help="How many (default: 50, at most 10,000).",
        ),
        arg("--offset", type=offset, default=0, metavar="N", help="Skip this many (default: 0)."),
    )

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        return archived(ctx, options["queue"], options["limit"], options["offset"])


class ArchivePurge(Subcommand):
    """Delete archived messages of a queue: all, or those older than --older-than.

    example: manage.py pgqrs archive purge emails --older-than 7d
    """

    path = ("archive", "purge")
    arguments = (
        QUEUE,
        duration_option(
            "--older-than", "Only rows archived longer ago than this (e.g. 3600, 12h, 7d)."
        ),
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
