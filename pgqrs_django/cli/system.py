"""``pgqrs install``, ``uninstall``, ``verify`` and ``stats``: the tables and the totals."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from pgqrs_django.formatting import format_bytes, render_record

from .base import Context, Subcommand
from .errors import UsageError, one_line
from .output import Output


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


class Stats(Subcommand):
    path = ("stats",)
    help = "Totals across queues, workers by status, and table sizes."
    example = "manage.py pgqrs stats"

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        data = {"database": ctx.using, **ctx.admin.system_stats().as_dict()}
        sizes = {table: format_bytes(size) for table, size in data["table_bytes"].items()}
        shown = {**data, "table_bytes": sizes}
        return Output(data, text=render_record(shown, nested=True))
