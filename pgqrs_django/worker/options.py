"""What a worker is asked to do (:class:`WorkerOptions`), the settings it runs with once
they are checked (:class:`Settings`), and the timings every part of the worker shares."""

from __future__ import annotations

import dataclasses

from .. import conf
from ..validation import positive_int, seconds

#: Longest a finished message waits for its (batched) archive statement, in seconds.
ACK_DELAY = 0.005
#: Finished messages that trigger an archive statement at once, whatever their age.
ACK_BUFFER = 100
#: Shortest lease the worker takes (a shorter one would end before a job could start).
MIN_LOCK_TIME = 0.5
#: Shortest wait before looking again for a message that is due now but was not claimed.
DUE_RECHECK = 0.02
#: Default grace period for running jobs after SIGTERM (seconds).
DEFAULT_GRACE = 30.0
#: Default number of handlers running at once.
DEFAULT_CONCURRENCY = 4


@dataclasses.dataclass
class WorkerOptions:
    """What ``pgqrs_worker`` was asked to do; ``None`` means "the setting's default"."""

    queues: list[str] = dataclasses.field(default_factory=list)
    handlers: list[str] = dataclasses.field(default_factory=list)
    concurrency: int = DEFAULT_CONCURRENCY
    batch_size: int | None = None
    lock_time: float | None = None
    burst: bool = False
    max_messages: int | None = None
    poll_interval: float | None = None
    listen: bool = True
    grace: float = DEFAULT_GRACE
    name: str | None = None
    using: str | None = None
    #: The worker's claims and acknowledgements do not wait for the WAL flush.
    async_commit: bool = False
    #: Enqueue the registered periodic jobs (@pgqrs_django.periodic) at their ticks.
    periodic: bool = True


@dataclasses.dataclass(frozen=True)
class Settings:
    """The options checked, with the project's settings filled in for what they leave out.
    Building it raises InvalidInput for a value out of range."""

    using: str
    concurrency: int
    batch_size: int
    #: The lease of each claim; None: each queue's visibility timeout.
    lock_time: float | None
    poll_interval: float
    grace: float
    max_messages: int | None
    heartbeat_interval: float

    @classmethod
    def of(cls, options: WorkerOptions) -> Settings:
        batch_size = options.batch_size
        poll_interval = options.poll_interval
        return cls(
            using=options.using or conf.database(),
            concurrency=positive_int(options.concurrency, "concurrency", maximum=10_000),
            batch_size=positive_int(
                batch_size if batch_size is not None else int(conf.get("DEFAULT_BATCH_SIZE")),
                "batch size",
                maximum=10_000,
            ),
            lock_time=(
                None
                if options.lock_time is None
                else seconds(options.lock_time, "lock time", allow_zero=False)
            ),
            poll_interval=seconds(
                poll_interval if poll_interval is not None else float(conf.get("POLL_INTERVAL")),
                "poll interval",
                allow_zero=False,
            ),
            grace=seconds(options.grace, "grace period"),
            max_messages=(
                None
                if options.max_messages is None
                else positive_int(options.max_messages, "max messages")
            ),
            heartbeat_interval=float(conf.get("HEARTBEAT_INTERVAL")),
        )
