"""``manage.py pgqrs_worker``: run the handlers of one or more queues.

This module only parses arguments and maps errors to exit codes; the loop is
:class:`pgqrs_django.worker.WorkerRuntime`. See docs/worker.md.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import types
from typing import Any, NoReturn

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import Error as DatabaseError

from pgqrs_django import conf
from pgqrs_django.exceptions import PgqrsError
from pgqrs_django.validation import QUEUE_NAME_PATTERN, validate_queue_name
from pgqrs_django.worker import (
    DEFAULT_CONCURRENCY,
    DEFAULT_GRACE,
    MIN_LOCK_TIME,
    WorkerOptions,
    WorkerRuntime,
)

LOG_LEVELS = ("debug", "info", "warning", "error")


def queue_name(value: str) -> str:
    try:
        return validate_queue_name(value)
    except PgqrsError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def whole_number(maximum: int) -> Any:
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
        if not 1 <= number <= maximum:
            raise argparse.ArgumentTypeError(f"{value} is not between 1 and {maximum}")
        return number

    return parse


def duration(*, allow_zero: bool = False, minimum: float = 0.0) -> Any:
    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
        if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
            raise argparse.ArgumentTypeError(
                f"{value!r} must be a number of seconds {'>= 0' if allow_zero else '> 0'}"
            )
        if number < minimum:
            raise argparse.ArgumentTypeError(f"{value!r} is under the minimum of {minimum:g} s")
        return number

    return parse


def worker_name(value: str) -> str:
    if not value.strip() or len(value) > 200:
        raise argparse.ArgumentTypeError("a worker name has 1-200 characters")
    return value


class Command(BaseCommand):
    help = (
        "Run the handlers of one or more pgqrs queues: claim messages in batches, run them "
        "concurrently, archive successes, retry failures. Stops gracefully on SIGTERM/SIGINT."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)

        # Bad arguments: one line on stderr and exit code 2, not argparse's usage block.
        def error(self: CommandParser, message: str) -> NoReturn:
            if self.called_from_command_line:
                self.exit(2, f"{self.prog}: error: {message}\n")
            raise CommandError(f"Error: {message}", returncode=2)

        setattr(parser, "error", types.MethodType(error, parser))  # noqa: B010
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--queue",
            "-q",
            dest="queues",
            action="append",
            default=[],
            type=queue_name,
            metavar="NAME",
            help="a queue to serve (repeat for several; default: every queue with a handler; "
            f"names match {QUEUE_NAME_PATTERN})",
        )
        parser.add_argument(
            "--handler",
            dest="handlers",
            action="append",
            default=[],
            metavar="[QUEUE=]DOTTED.PATH",
            help="a module to import (its @handler functions register), or a function that "
            "handles every --queue (or QUEUE only); repeatable",
        )
        parser.add_argument(
            "--concurrency",
            "-c",
            type=whole_number(10_000),
            default=DEFAULT_CONCURRENCY,
            help=f"handlers running at once (threads for sync handlers; default "
            f"{DEFAULT_CONCURRENCY})",
        )
        parser.add_argument(
            "--batch-size",
            "-b",
            type=whole_number(10_000),
            default=None,
            help="messages claimed per round trip (default: PGQRS DEFAULT_BATCH_SIZE)",
        )
        parser.add_argument(
            "--lock-time",
            type=duration(minimum=MIN_LOCK_TIME),
            default=None,
            metavar="SECONDS",
            help="lease of each claimed message (default: the queue's visibility_timeout); "
            "extended while a job runs",
        )
        parser.add_argument(
            "--poll-interval",
            type=duration(allow_zero=False),
            default=None,
            metavar="SECONDS",
            help="polling period and operator-request check (default: PGQRS POLL_INTERVAL)",
        )
        parser.add_argument(
            "--grace",
            type=duration(allow_zero=True),
            default=DEFAULT_GRACE,
            metavar="SECONDS",
            help=f"how long running jobs may finish after SIGTERM (default {DEFAULT_GRACE:g})",
        )
        parser.add_argument(
            "--burst", action="store_true", help="exit once the queues have nothing ready"
        )
        parser.add_argument(
            "--max-messages",
            type=whole_number(2**62),
            default=None,
            metavar="N",
            help="exit after processing N messages",
        )
        parser.add_argument(
            "--no-listen",
            dest="listen",
            action="store_false",
            help="poll only, no LISTEN/NOTIFY (for PgBouncer in transaction pooling mode)",
        )
        parser.add_argument(
            "--async-commit",
            action="store_true",
            help="the worker's claims and acknowledgements do not wait for the WAL flush: "
            "faster; after a PostgreSQL crash the last acknowledged jobs may run again",
        )
        parser.add_argument(
            "--no-periodic",
            dest="periodic",
            action="store_false",
            help="do not enqueue the periodic jobs (@pgqrs_django.periodic schedules)",
        )
        parser.add_argument(
            "--name", type=worker_name, default=None, help="worker name (default host-pid-random)"
        )
        parser.add_argument(
            "--log-level", choices=LOG_LEVELS, default="info", help="worker log level"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self._configure_logging(options["log_level"])
        try:
            runtime = WorkerRuntime(
                WorkerOptions(
                    queues=options["queues"],
                    handlers=options["handlers"],
                    concurrency=options["concurrency"],
                    batch_size=options["batch_size"],
                    lock_time=options["lock_time"],
                    burst=options["burst"],
                    max_messages=options["max_messages"],
                    poll_interval=options["poll_interval"],
                    listen=options["listen"],
                    grace=options["grace"],
                    name=options["name"],
                    async_commit=options["async_commit"],
                    periodic=options["periodic"],
                )
            )
            runtime.prepare()
        except (PgqrsError, ImproperlyConfigured) as exc:
            raise CommandError(str(exc), returncode=2) from None
        except DatabaseError as exc:
            alias = conf.database()
            detail = " ".join(str(exc).split())
            raise CommandError(f"cannot use database {alias!r}: {detail}", returncode=1) from None
        code = runtime.run(install_signal_handlers=True)
        if code:
            sys.exit(code)

    def _configure_logging(self, level: str) -> None:
        """Worker logs go to stderr unless the project's LOGGING already sends them
        somewhere (a handler on ``pgqrs_django`` or an ancestor, root included)."""
        log = logging.getLogger("pgqrs_django")
        log.setLevel(level.upper())
        if not log.hasHandlers():
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(
                logging.Formatter("%(asctime)s %(levelname)s [%(process)d] %(message)s")
            )
            log.addHandler(handler)
