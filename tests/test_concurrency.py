"""Several OS processes claim from one queue: each message is delivered and archived once."""

from __future__ import annotations

import json
import subprocess
from collections import Counter

import pytest

from pgqrs_django import PgqrsAdmin, Producer
from pgqrs_django.models import Archive, Message

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.pgbouncer]


def test_four_processes_archive_every_message_exactly_once(run_script) -> None:
    PgqrsAdmin().create_queue("race")
    sent = Producer("race").batch_enqueue([{"n": i} for i in range(2000)])
    expected = {m.id for m in sent}

    procs = [
        run_script("claim_and_archive", "race", batch, stdin=subprocess.PIPE)
        for batch in (1, 7, 25, 50)
    ]
    for proc in procs:  # all four connected and waiting, then released at once
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        reports.append(json.loads(out.strip().splitlines()[-1]))

    claims = Counter(i for r in reports for i in r["claimed"])
    assert set(claims) == expected
    assert max(claims.values()) == 1, "a message was delivered twice"
    archived = [i for r in reports for i in r["archived"]]
    assert sorted(archived) == sorted(expected)
    assert len({r["pid"] for r in reports}) == 4
    # Work really was shared: every process claimed something.
    assert all(r["claimed"] for r in reports)
    assert not Message.objects.exists()
    assert Archive.objects.count() == 2000
    assert set(Archive.objects.values_list("pk", flat=True)) == expected
    # Each archive row names the process that claimed it.
    owner = {i: r["pid"] for r in reports for i in r["claimed"]}
    for msg_id, result in Archive.objects.values_list("pk", "result"):
        assert result == {"pid": owner[msg_id]}
