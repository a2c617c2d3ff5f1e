"""The body of ``manage.py pgqrs_worker``: its flags, and the runtime they configure.

The loop itself is :class:`pgqrs_django.worker.WorkerRuntime`; see docs/worker.md.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from django.core.management.base import CommandParser

from pgqrs_django.validation import QUEUE_NAME_PATTERN
from pgqrs_django.worker import (
    DEFAULT_CONCURRENCY,
    DEFAULT_GRACE,
    MIN_LOCK_TIME,
    WorkerOptions,
    WorkerRuntime,
)

from .output import configure_logging
from .types import Duration, WholeNumber, queue_name, worker_name

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_LAYOUT = "%(asctime)s %(levelname)s [%(process)d] %(message)s"


def add_arguments(parser: CommandParser) -> None:
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
        type=WholeNumber(1, 10_000),
        default=DEFAULT_CONCURRENCY,
        help=f"handlers running at once (threads for sync handlers; default {DEFAULT_CONCURRENCY})",
    )
    parser.add_argument(
        "--batch-size",
        "-b",
        type=WholeNumber(1, 10_000),
        default=None,
        help="messages claimed per round trip (default: PGQRS DEFAULT_BATCH_SIZE)",
    )
    parser.add_argument(
        "--lock-time",
        type=Duration(allow_zero=False, minimum=MIN_LOCK_TIME),
        default=None,
        metavar="DURATION",
        help="lease of each claimed message, e.g. 30, 30s, 5m (default: the queue's "
        "visibility_timeout); extended while a job runs",
    )
    parser.add_argument(
        "--poll-interval",
        type=Duration(allow_zero=False),
        default=None,
        metavar="DURATION",
        help="polling period and operator-request check (default: PGQRS POLL_INTERVAL)",
    )
    parser.add_argument(
        "--grace",
        type=Duration(),
        default=DEFAULT_GRACE,
        metavar="DURATION",
        help=f"how long running jobs may finish after SIGTERM (default {DEFAULT_GRACE:g}s)",
    )
    parser.add_argument(
        "--burst", action="store_true", help="exit once the queues have nothing ready"
    )
    parser.add_argument(
        "--max-messages",
        type=WholeNumber(1, 2**62),
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
    parser.add_argument("--log-level", choices=LOG_LEVELS, default="info", help="worker log level")


def handle(options: dict[str, Any]) -> int:
    """Start a worker as ``options`` say, serve until it stops, and return its exit code.
    Bad handlers or queues raise (InvalidInput, QueueNotFound...) before anything is claimed."""
    configure_logging(options["log_level"], layout=LOG_LAYOUT)
    # The flags are named after WorkerOptions' fields (dest= where the flag reads otherwise).
    fields = {field.name for field in dataclasses.fields(WorkerOptions)}
    runtime = WorkerRuntime(WorkerOptions(**{k: v for k, v in options.items() if k in fields}))
    runtime.prepare()
    return runtime.run(install_signal_handlers=True)
