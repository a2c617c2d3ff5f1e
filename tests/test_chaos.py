"""Chaos: 20,000 messages drained by 4 ``pgqrs_worker`` processes while a separate process
(tests/scripts/chaos.py) SIGKILLs, every half second, a worker that is running handlers (never one
still starting up), starting a replacement each time, and once terminates every backend
connection to the database.

Afterwards:

- the chaos reached work in flight: every victim had run handlers, at least 10 kills left
  leased messages behind, each of those messages was delivered again, under a new lease,
  and archived by another worker, and some handlers ran twice (killed after running,
  before their archive statement);
- every message is archived exactly once;
- every handler execution beyond one per message is accounted for: each message's
  executions ran under distinct leases (its ``read_ct`` at claim time, recorded by the
  ``chaos`` handler with the pid and worker id), the last one is the lease the archive row
  records, and every earlier one ran in a worker process that was SIGKILLed.

The monkey's choice of victims comes from a seed, printed with the results; set
``PGQRS_CHAOS_SEED`` to replay a run with the same one.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest
from django.db import transaction

from pgqrs_django import PgqrsAdmin, Producer
from pgqrs_django.models import Archive, Message, Worker
from tests.conftest import skip_with_a_queue_database
from tests.databases import pgqrs_connection
from tests.testapp.models import Execution

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    skip_with_a_queue_database,
]

TOTAL = 20_000


def test_chaos_every_message_archived_once_and_duplicates_belong_to_killed_workers(
    run_script: Callable[..., subprocess.Popen[str]], tmp_path: Path
) -> None:
    seed = int(os.environ.get("PGQRS_CHAOS_SEED") or random.SystemRandom().randrange(2**31))
    print(f"chaos: seed {seed} (replay with PGQRS_CHAOS_SEED={seed})")
    # A 10 s lease: a killed worker's messages come back 10 s after its last claim; live
    # workers extend the leases of what they hold. Plenty of attempts: a handler whose
    # connection is terminated fails and is retried.
    PgqrsAdmin().create_queue("chaos", visibility_timeout=10, max_attempts=1000)
    with transaction.atomic(using=pgqrs_connection().alias):
        sent = {m.id for m in Producer("chaos").batch_enqueue([{"n": n} for n in range(TOTAL)])}
    assert len(sent) == TOTAL
    monkey = run_script(
        "chaos", "chaos", TOTAL, tmp_path, "--workers", 4, "--every", 0.5, "--seed", seed
    )
    out, err = monkey.communicate(timeout=1200)
    assert monkey.returncode == 0, err[-3000:]
    report = json.loads(out.strip().splitlines()[-1])
    pgqrs_connection().close()  # the monkey terminated this test's connection too

    kills = report["kills"]
    in_flight = [kill for kill in kills if kill["held"]]
    killed = {kill["pid"] for kill in kills}
    print(
        f"chaos: {TOTAL} messages, {len(kills)} SIGKILLs ({len(in_flight)} with leased "
        f"messages, {sum(len(k['held']) for k in kills)} in all; "
        f"{report['ticks_without_victim']} ticks found no worker running handlers), "
        f"{report['terminated_backends']} backends terminated once, "
        f"{len(report['started'])} worker processes, {report['seconds']} s"
    )
    assert report["terminated_backends"] is not None and report["terminated_backends"] >= 4
    assert report["survivor_exit_codes"] == [0, 0, 0, 0]

    # Every message archived exactly once (the archive's primary key is the message id).
    archived = {row.id: row for row in Archive.objects.filter(queue__name="chaos")}
    assert set(archived) == sent
    assert {row.outcome for row in archived.values()} == {"succeeded"}
    assert not Message.objects.exists()

    # The kills reached work in flight, and it was delivered again. Every victim had run
    # handlers (it was past start-up), and what it held when it died was archived under a
    # later lease, by another worker.
    ran = set(Execution.objects.filter(pid__in=killed).values_list("pid", flat=True))
    assert ran == killed, ("victims that never ran a handler", killed - ran, seed)
    assert len(in_flight) >= 10, (f"only {len(in_flight)} kills hit leased work", seed)
    for kill in in_flight:
        for msg_id, read_ct in kill["held"].items():
            row = archived[int(msg_id)]
            assert row.read_ct > read_ct and row.worker_name != kill["worker"], (kill, row, seed)

    # Every execution beyond one per message is accounted to a killed worker's lease.
    names = dict(Worker.objects.values_list("pk", "name"))
    pids = dict(Worker.objects.values_list("pk", "pid"))
    runs: dict[int, list[tuple[int, int, int | None]]] = defaultdict(list)
    for msg_id, read_ct, pid, worker_id in Execution.objects.values_list(
        "msg_id", "read_ct", "pid", "worker_id"
    ):
        runs[msg_id].append((read_ct, pid, worker_id))
    assert set(runs) == sent  # every message ran
    duplicates = 0
    for msg_id, executions in runs.items():
        executions.sort()
        leases = [read_ct for read_ct, _, _ in executions]
        assert len(set(leases)) == len(leases), (msg_id, executions, seed)  # one run per lease
        last_ct, last_pid, last_worker = executions[-1]
        row = archived[msg_id]
        # The last run is the one archived: same lease, same worker.
        assert (last_ct, names[last_worker]) == (row.read_ct, row.worker_name), (msg_id, row)
        assert pids[last_worker] == last_pid
        for read_ct, pid, worker_id in executions[:-1]:
            duplicates += 1
            assert pid in killed, (msg_id, executions, "earlier run by a live worker", seed)
            assert pids[worker_id] == pid and read_ct < row.read_ct
    print(f"chaos: {duplicates} duplicate executions, all by SIGKILLed workers")
    assert duplicates > 0, ("no kill interrupted a handler that had run", seed)
