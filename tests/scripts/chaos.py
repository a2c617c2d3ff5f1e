"""The chaos monkey of tests/test_chaos.py, a process of its own.

Starts ``--workers`` ``pgqrs_worker`` processes on QUEUE, then every ``--every`` seconds
SIGKILLs one of them and starts a replacement, until TOTAL messages of the queue are in the
archive. A victim is drawn (with ``--seed``) only from the workers that are running
handlers: registered, holding leased messages, and with at least one handler execution
recorded; a tick with no such worker kills nothing. After each kill, once the victim's
database connections have ended (a statement it had sent may still commit until then), it
records the messages the victim still held and their lease (``read_ct``): its work in flight.

Once half of the messages are archived, it kills no more until every worker is running
handlers, then terminates every other backend connection to the database
(``pg_terminate_backend``) once, and goes on killing. Then it stops the survivors with
SIGTERM and prints one JSON line: the seed, the pids it started, each kill with the work in
flight it left, the ticks that found no victim, how many backends it terminated, the
survivors' exit codes and the elapsed time.

    python -m tests.scripts.chaos QUEUE TOTAL LOGDIR --seed N [--workers 4] [--every 1]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

from pgqrs_django.models import Archive, Message, Worker  # noqa: E402
from tests.databases import pgqrs_connection  # noqa: E402
from tests.testapp.models import Execution  # noqa: E402
from tests.worker_support import (  # noqa: E402
    WorkerProcess,
    terminate_other_backends,
    wait_for_backends,
)

WORKER_ARGS = ["--concurrency", "4", "--batch-size", "50", "--poll-interval", "0.2"]
# Failed deliveries (a handler whose connection was terminated) come back quickly.
WORKER_ENV = {
    "PGQRS_RETRY_BACKOFF_BASE": "0.05",
    "PGQRS_RETRY_BACKOFF_MAX": "0.2",
    "PGQRS_RETRY_JITTER": "0",
}
TIME_LIMIT = 900.0


def running_handlers(alive: list[WorkerProcess]) -> dict[int, Worker]:
    """The rows of the workers in ``alive`` that are past start-up and running handlers: a
    registered row, leased messages, and a recorded execution. By pid."""
    return {
        row.pid: row
        for row in Worker.objects.running().filter(pid__in=[w.pid for w in alive])
        if Message.objects.filter(consumer_id=row.pk, claimed_at__isnull=False).exists()
        and Execution.objects.filter(worker_id=row.pk).exists()
    }


#: The application_name (PGAPPNAME) of each worker's connections, by pid.
names: dict[int, str] = {}


def application_name(pid: int) -> str:
    return names[pid]


def ask(sql: str, params: list[Any]) -> Any:
    with pgqrs_connection().cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


def kill(victim: WorkerProcess, row: Worker) -> dict[str, Any]:
    """SIGKILL ``victim``; the leases it left behind (message id -> read_ct), read once its
    database connections have ended."""
    name = application_name(victim.pid)
    assert ask("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [name])
    victim.kill()
    wait_for_backends(name, ask, gone=True)
    held = Message.objects.filter(consumer_id=row.pk, claimed_at__isnull=False)
    return {
        "pid": victim.pid,
        "worker": row.name,
        "held": {str(pk): read_ct for pk, read_ct in held.values_list("pk", "read_ct")},
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("queue")
    parser.add_argument("total", type=int)
    parser.add_argument("logdir", type=Path)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--every", type=float, default=1.0)
    parser.add_argument("--seed", type=int, required=True)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    env = {**os.environ, **WORKER_ENV}
    started: list[int] = []

    def start() -> WorkerProcess:
        log = args.logdir / f"worker-{len(started)}.log"
        # Its connections carry a name of their own, to tell when they have ended.
        name = f"chaos-worker-{len(started)}"
        worker = WorkerProcess(
            ["--queue", args.queue, *WORKER_ARGS], {**env, "PGAPPNAME": name}, log
        )
        started.append(worker.pid)
        names[worker.pid] = name
        return worker

    began = time.monotonic()
    alive = [start() for _ in range(args.workers)]
    kills: list[dict[str, Any]] = []
    no_victim = 0
    terminated: int | None = None
    archived = 0
    try:
        while True:
            time.sleep(args.every)
            archived = Archive.objects.filter(queue__name=args.queue).count()
            if archived >= args.total or time.monotonic() - began > TIME_LIMIT:
                break
            candidates = running_handlers(alive)
            if terminated is None and archived >= args.total // 2:
                # No kill until every worker runs handlers, so that every one of them loses
                # its connections.
                if len(candidates) == len(alive):
                    terminated = terminate_other_backends()
                continue
            if not candidates:
                no_victim += 1
                continue
            pid = rng.choice(sorted(candidates))
            victim = next(w for w in alive if w.pid == pid)
            kills.append(kill(victim, candidates[pid]))
            alive[alive.index(victim)] = start()
        # Stop the survivors once each has started serving (a worker still importing Django
        # has no signal handler yet and would die of the SIGTERM).
        wait_until = time.monotonic() + 120
        while time.monotonic() < wait_until and Worker.objects.running().filter(
            pid__in=[w.pid for w in alive]
        ).count() < len(alive):
            time.sleep(0.2)
        for worker in alive:
            worker.signal(signal.SIGTERM)
        codes = [worker.wait(120) for worker in alive]
    finally:
        for worker in alive:  # never leave a process behind, whatever failed
            worker.kill()
    report = {
        "seed": args.seed,
        "started": started,
        "kills": kills,
        "ticks_without_victim": no_victim,
        "terminated_backends": terminated,
        "survivor_exit_codes": codes,
        "archived": archived,
        "seconds": round(time.monotonic() - began, 1),
    }
    print(json.dumps(report), flush=True)
    return 0 if archived >= args.total else 1


if __name__ == "__main__":
    sys.exit(main())
