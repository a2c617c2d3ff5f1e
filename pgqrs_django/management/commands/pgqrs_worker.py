"""``manage.py pgqrs_worker``: run the handlers of one or more queues.

An entry point only: the flags are in :mod:`pgqrs_django.cli.worker_command`, the loop is
:class:`pgqrs_django.worker.WorkerRuntime`, and errors become one line with the exit codes of
:mod:`pgqrs_django.cli.errors` (2 bad flags, queues or handlers; 1 the database unreachable
or refused). See docs/worker.md.
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import CommandParser

from pgqrs_django.cli import worker_command
from pgqrs_django.cli.command import CliCommand


class Command(CliCommand):
    help = (
        "Run the handlers of one or more pgqrs queues: claim messages in batches, run them "
        "concurrently, archive successes, retry failures. Stops gracefully on SIGTERM/SIGINT."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        worker_command.add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        code = worker_command.handle(options)
        if code:
            sys.exit(code)
