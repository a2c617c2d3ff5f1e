"""``pgqrs install``, ``uninstall``, ``verify`` and ``stats``: the tables and the totals."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from pgqrs_django.formatting import format_bytes, render_record

from .base import Context, Subcommand, flag
from .errors import OPERATIONAL, UsageError, one_line
from .output import Output


class Install(Subcommand):
    """Create the pgqrs tables (apply the app's migrations).

    Create the pgqrs tables on the database; does nothing if they exist.

    example: manage.py pgqrs install
    """

    path = ("install",)

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        ctx.admin.install()
        done = {"database": ctx.using, "installed": True}
        return Output(done, text=f"pgqrs is installed on database {ctx.using!r}")


class Uninstall(Subcommand):
    """Drop the pgqrs tables and every message in them.

    Drop the pgqrs tables (unapply the app's migrations), deleting every queue, message,
    archived message and worker row. Asks for confirmation on a terminal; without a terminal
    it refuses (exit 2) unless --yes is given.

    example: manage.py pgqrs uninstall --yes
    """

    path = ("uninstall",)
    arguments = (flag("-y", "--yes", help="Do not ask for confirmation."),)

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        if not options["yes"]:
            self.confirm(ctx)
        ctx.admin.uninstall()
        done = {"database": ctx.using, "uninstalled": True}
        return Output(done, text=f"pgqrs tables dropped from database {ctx.using!r}")

    @staticmethod
    def confirm(ctx: Context) -> None:
        """Ask on the terminal; anything but "yes" cancels (exit 1, nothing changed)."""
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
            raise CommandError("uninstall cancelled: nothing changed", returncode=OPERATIONAL)


class Verify(Subcommand):
    """Check the connection, migrations, tables and indexes (exit 1 on problems).

    Check that the database is reachable PostgreSQL, the pgqrs migrations are applied and
    every table and index exists. Exits 1 when a problem is found.

    example: manage.py pgqrs verify
    """

    path = ("verify",)

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        report = ctx.admin.verify()
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
        data = {"database": ctx.using, **report.as_dict()}
        return Output(data, text="\n".join(lines), failure=failure)


class Stats(Subcommand):
    """Totals across queues, workers by status, and table sizes.

    example: manage.py pgqrs stats
    """

    path = ("stats",)

    def run(self, ctx: Context, options: dict[str, Any]) -> Output:
        data = {"database": ctx.using, **ctx.admin.system_stats().as_dict()}
        sizes = {table: format_bytes(size) for table, size in data["table_bytes"].items()}
        return Output(data, text=render_record({**data, "table_bytes": sizes}, nested=True))
