"""``manage.py pgqrs``: the operator CLI (every pgqrs command, as subcommands).

An entry point only: the subcommands, their argument types, the output and the mapping of
errors to exit codes live in :mod:`pgqrs_django.cli`; every action goes through
``PgqrsAdmin``, ``Producer`` or ``Consumer``. The reference with examples is docs/cli.md.

Exit codes: 0 success; 1 the database is unreachable or refused, the tables are missing, or
``verify`` or ``worker health`` found problems; 2 usage or input error; 70 an unexpected
error (a bug). Errors are one line on stderr, never a traceback (unless ``--traceback`` is
given), and bad input changes nothing.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.core.management.base import CommandParser

from pgqrs_django.cli import pgqrs_command
from pgqrs_django.cli.command import CliCommand


class Command(CliCommand):
    help = (
        "Operate the pgqrs job queue: install, verify, queues, messages, archive, workers. "
        "Exit codes: 0 success, 1 database unreachable or refused (or tables missing, verify "
        "or health failed), 2 usage or input error, 70 unexpected error."
    )
    epilog = (
        "Global flags, and Django's, may also follow the subcommand. Run `manage.py pgqrs "
        "COMMAND --help` for a command's flags; docs/cli.md has the reference with examples."
    )
    # The CLI must work (and fail in one line) when the database is down or the project
    # has unrelated check errors; `verify` is the pgqrs check.
    requires_system_checks: ClassVar[list[str]] = []  # type: ignore[misc]
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        pgqrs_command.add_arguments(self, parser)

    def handle(self, *args: Any, **options: Any) -> None:
        pgqrs_command.handle(self, options)
