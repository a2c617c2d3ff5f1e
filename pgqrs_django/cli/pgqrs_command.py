"""The body of ``manage.py pgqrs``: its parser tree and what runs a subcommand.

Every subcommand is a :class:`~pgqrs_django.cli.base.Subcommand` in the module of its group;
this module lists them, builds one parser per group and subcommand, and runs the one chosen.
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import CommandError, CommandParser

from . import archive, message, queue, system, worker
from .base import Context, Subcommand, database
from .command import CliCommand, CliParser
from .output import FORMATS, configure_logging, out_path

SUBCOMMANDS: list[type[Subcommand]] = [
    system.Install,
    system.Uninstall,
    system.Verify,
    *queue.SUBCOMMANDS,
    *message.SUBCOMMANDS,
    *archive.SUBCOMMANDS,
    *worker.SUBCOMMANDS,
    system.Stats,
]

GROUPS = {
    "queue": "Create, inspect, pause and empty queues.",
    "message": "Send, read, inspect and delete messages.",
    "archive": "List and purge archived messages.",
    "worker": "Inspect and steer worker processes.",
}

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def add_global_options(command: CliCommand, parser: CommandParser) -> None:
    """The flags every subcommand takes, before or after it (as Django's own flags)."""
    command.add_base_argument(
        parser,
        "--format",
        choices=FORMATS,
        default="table",
        help="Output format: 'table' (aligned, for people; the default) or 'json' (stable "
        "keys, ISO 8601 times, for programs).",
    )
    command.add_base_argument(
        parser,
        "--out",
        metavar="PATH",
        help="Write the output to PATH instead of standard output.",
    )
    command.add_base_argument(
        parser,
        "--log-level",
        type=str.lower,
        choices=LOG_LEVELS,
        help="Log level of the pgqrs_django loggers, written to stderr (default: as the "
        "project's LOGGING configures them).",
    )
    command.add_base_argument(
        parser,
        "--database",
        metavar="ALIAS",
        help="Database alias to run on (default: PGQRS['DATABASE'], normally 'default').",
    )


def add_arguments(command: CliCommand, parser: CommandParser) -> None:
    """The global flags, a parser per group (``queue``...) and one per subcommand."""
    add_global_options(command, parser)
    top = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=CliParser
    )
    groups: dict[str, Any] = {}
    for cls in SUBCOMMANDS:
        *group_path, name = cls.path
        actions = top
        if group_path:
            group = group_path[0]
            if group not in groups:
                group_parser = command.add_subparser(
                    top,
                    group,
                    help=GROUPS[group],
                    description=GROUPS[group],
                    epilog=f"Run `manage.py pgqrs {group} ACTION --help` for an action's flags.",
                )
                group_parser.command_path = group
                groups[group] = group_parser.add_subparsers(
                    dest="action", metavar="ACTION", required=True, parser_class=CliParser
                )
            actions = groups[group]
        summary, description, example = cls.texts()
        sub = command.add_subparser(
            actions,
            name,
            help=summary,
            description=description,
            epilog=f"example:\n  {example}" if example else None,
        )
        subcommand = cls()
        sub.command_path = " ".join(cls.path)
        subcommand.add_arguments(sub)
        command.add_base_arguments(sub)
        sub.set_defaults(subcommand=subcommand)


def handle(command: CliCommand, options: dict[str, Any]) -> None:
    """Run the subcommand ``options`` chose and print what it returns."""
    subcommand: Subcommand = options["subcommand"]
    ctx = Context(
        using=database(options["database"]),
        format=options["format"],
        out=out_path(options["out"]),
        stdout=command.stdout,
        stderr=command.stderr,
        stdin=options.get("stdin") or sys.stdin,
        raw_stderr=options.get("stderr") or sys.stderr,
    )
    configure_logging(options["log_level"])
    output = subcommand.run(ctx, options)
    ctx.emit(output)
    if output.failure:
        raise CommandError(output.failure, returncode=1)
