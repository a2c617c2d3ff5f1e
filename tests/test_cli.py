"""``manage.py pgqrs``: every subcommand, run through ``call_command``, checked in the database
and in both output formats (tables aligned for people, JSON with stable keys)."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError
from django.db.models import F
from django.utils import timezone

from pgqrs_django import Consumer, PgqrsAdmin, Producer, conf
from pgqrs_django.models import Archive, Message, Queue, Worker
from tests.cli_support import (
    assert_record,
    assert_table,
    call,
    call_json,
    run_cli,
    run_in_savepoint,
)
from tests.databases import server_now

pytestmark = [pytest.mark.django_db, pytest.mark.pgbouncer]

QUEUE_KEYS = [
    "name",
    "visibility_timeout",
    "max_attempts",
    "paused",
    "dead_letter_queue",
    "created_at",
]
SHARED_KEYS = [
    "id",
    "queue",
    "payload",
    "priority",
    "enqueued_at",
    "visible_at",
    "read_ct",
    "dequeued_at",
]
MESSAGE_KEYS = [*SHARED_KEYS, "claimed_at", "consumer", "dedupe_key", "last_error"]
ARCHIVE_KEYS = [
    *SHARED_KEYS,
    "dedupe_key",
    "archived_at",
    "outcome",
    "duration",
    "worker",
    "error",
    "result",
]
WORKER_KEYS = [
    "id",
    "name",
    "hostname",
    "pid",
    "status",
    "stale",
    "shutdown_requested",
    "queues",
    "started_at",
    "heartbeat_at",
    "stopped_at",
]
METRICS_KEYS = [
    "name",
    "paused",
    "ready",
    "delayed",
    "in_flight",
    "archived",
    "succeeded",
    "failed",
    "dead",
    "cancelled",
    "oldest_ready_age",
    "workers",
    "pending",
]
QUEUE_HEADERS = ["NAME", "VISIBILITY", "MAX_ATTEMPTS", "PAUSED", "DEAD_LETTER_QUEUE", "CREATED_AT"]
MESSAGE_HEADERS = ["ID", "PRIORITY", "READ_CT", "VISIBLE_AT", "ENQUEUED_AT", "PAYLOAD"]
ARCHIVE_HEADERS = ["ID", "OUTCOME", "READ_CT", "DURATION", "ARCHIVED_AT", "WORKER", "PAYLOAD"]
WORKER_HEADERS = ["ID", "NAME", "HOSTNAME", "PID", "STATUS", "STALE", "QUEUES", "HEARTBEAT_AT"]
METRICS_HEADERS = [
    "QUEUE",
    "READY",
    "DELAYED",
    "IN_FLIGHT",
    "ARCHIVED",
    "SUCCEEDED",
    "FAILED",
    "DEAD",
    "CANCELLED",
    "OLDEST_READY",
    "WORKERS",
    "PAUSED",
]

FORMATS = pytest.mark.parametrize("fmt", ["table", "json"])


def iso(value: str) -> dt.datetime:
    """An ISO 8601 datetime with a time zone, as the JSON output writes them."""
    parsed = dt.datetime.fromisoformat(value)
    assert parsed.tzinfo is not None, value
    return parsed


def out(fmt: str, *args: object) -> str:
    return call("--format", fmt, *args)


# -- install / uninstall / verify -------------------------------------------------------------


@FORMATS
def test_install_creates_the_tables(fmt: str, admin: PgqrsAdmin) -> None:
    admin.uninstall()
    assert not admin.verify().ok
    text = out(fmt, "install")
    assert admin.verify().ok
    if fmt == "json":
        assert json.loads(text) == {"database": conf.database(), "installed": True}
    else:
        assert text == f"pgqrs is installed on database {conf.database()!r}\n"


def check_constraints_now() -> None:
    """The test runs inside a transaction, where rows just written leave deferred foreign-key
    checks pending, and PostgreSQL refuses to drop tables with pending checks: run them."""
    from django.db import connections

    with connections[conf.database()].cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


@FORMATS
def test_uninstall_with_yes_drops_the_tables(fmt: str, admin: PgqrsAdmin, queue: Queue) -> None:
    Producer("jobs").enqueue({"n": 1})
    check_constraints_now()
    text = out(fmt, "uninstall", "--yes")
    report = admin.verify()
    assert "missing table pgqrs_queue" in report.problems
    if fmt == "json":
        assert json.loads(text) == {"database": conf.database(), "uninstalled": True}
    else:
        assert text == f"pgqrs tables dropped from database {conf.database()!r}\n"


def test_uninstall_without_yes_and_without_a_terminal_refuses(admin: PgqrsAdmin) -> None:
    with pytest.raises(CommandError) as info:
        call("uninstall", stdin=io.StringIO("yes\n"))
    assert info.value.returncode == 2 and "--yes" in str(info.value)
    assert admin.verify().ok


@FORMATS
def test_verify_ok(fmt: str) -> None:
    text = out(fmt, "verify")
    checked = ["connection", "postgresql", "migrations", "tables", "indexes"]
    if fmt == "json":
        data = json.loads(text)
        assert list(data) == ["database", "ok", "problems", "checked"]
        assert data == {"database": conf.database(), "ok": True, "problems": [], "checked": checked}
    else:
        assert assert_record(text, ["database", "checked", "status"]) == {
            "database": conf.database(),
            "checked": ", ".join(checked),
            "status": "ok",
        }


@FORMATS
def test_verify_reports_problems_and_exits_1(fmt: str) -> None:
    from django.db import connections

    with connections[conf.database()].cursor() as cursor:
        cursor.execute("DROP INDEX pgqrs_msg_claim_idx")
    result = run_cli("--format", fmt, "verify")
    assert result.code == 1
    assert result.err_lines == [
        "pgqrs: error: verify found 1 problem(s): missing index pgqrs_msg_claim_idx"
    ]
    if fmt == "json":
        assert result.json["ok"] is False
        assert result.json["problems"] == ["missing index pgqrs_msg_claim_idx"]
    else:
        assert "status    FAILED" in result.out
        assert "problem   missing index pgqrs_msg_claim_idx" in result.out


# -- queues -----------------------------------------------------------------------------------


@FORMATS
def test_queue_create(fmt: str, admin: PgqrsAdmin) -> None:
    admin.create_queue("dead")
    text = out(
        fmt,
        "queue",
        "create",
        "emails",
        "--visibility-timeout",
        "1m30s",
        "--max-attempts",
        "7",
        "--dead-letter-queue",
        "dead",
    )
    queue = Queue.objects.get(name="emails")
    assert (queue.visibility_timeout, queue.max_attempts) == (90.0, 7)
    assert queue.dead_letter_queue is not None and queue.dead_letter_queue.name == "dead"
    if fmt == "json":
        data = json.loads(text)
        assert list(data) == QUEUE_KEYS
        assert iso(data.pop("created_at")) == queue.created_at
        assert data == {
            "name": "emails",
            "visibility_timeout": 90.0,
            "max_attempts": 7,
            "paused": False,
            "dead_letter_queue": "dead",
        }
    else:
        values = assert_record(text, QUEUE_KEYS)
        assert values["name"] == "emails" and values["dead_letter_queue"] == "dead"
        assert values["visibility_timeout"] == "90" and values["paused"] == "no"


def test_queue_create_uses_the_settings_defaults() -> None:
    call("queue", "create", "plain")
    queue = Queue.objects.get(name="plain")
    assert (queue.visibility_timeout, queue.max_attempts) == (5.0, 5)


@FORMATS
def test_queue_list(fmt: str, admin: PgqrsAdmin) -> None:
    admin.create_queue("b-queue", visibility_timeout=30)
    admin.create_queue("a-queue", dead_letter_queue="b-queue")
    admin.pause_queue("b-queue")
    text = out(fmt, "queue", "list")
    if fmt == "json":
        data = json.loads(text)
        assert [list(row) for row in data] == [QUEUE_KEYS, QUEUE_KEYS]
        assert [(r["name"], r["dead_letter_queue"], r["paused"]) for r in data] == [
            ("a-queue", "b-queue", False),
            ("b-queue", None, True),
        ]
    else:
        rows = assert_table(text, QUEUE_HEADERS)
        assert [row[:5] for row in rows] == [
            ["a-queue", "5s", "5", "no", "b-queue"],
            ["b-queue", "30s", "5", "yes", "-"],
        ]


@FORMATS
def test_queue_list_when_there_is_none(fmt: str) -> None:
    assert out(fmt, "queue", "list") == ("[]\n" if fmt == "json" else "no queues\n")


@FORMATS
def test_queue_get(fmt: str, queue: Queue) -> None:
    text = out(fmt, "queue", "get", "jobs")
    if fmt == "json":
        assert json.loads(text)["visibility_timeout"] == 30.0
    else:
        assert assert_record(text, QUEUE_KEYS)["max_attempts"] == "3"


@FORMATS
def test_queue_delete(fmt: str, queue: Queue) -> None:
    Producer("jobs").batch_enqueue([{"n": 1}, {"n": 2}])
    consumer = Consumer("jobs")
    consumer.archive(consumer.dequeue())
    text = out(fmt, "queue", "delete", "jobs")
    assert not Queue.objects.exists() and not Message.objects.exists()
    assert not Archive.objects.exists()
    if fmt == "json":
        assert json.loads(text) == {"queue": "jobs", "deleted": True, "messages": 1, "archived": 1}
    else:
        assert text == "deleted queue 'jobs' with 1 active and 1 archived messages\n"


@FORMATS
def test_queue_purge_keeps_the_archive(fmt: str, queue: Queue) -> None:
    Producer("jobs").batch_enqueue([{"n": 1}, {"n": 2}, {"n": 3}])
    consumer = Consumer("jobs")
    consumer.archive(consumer.dequeue())
    text = out(fmt, "queue", "purge", "jobs")
    assert not Message.objects.exists() and Archive.objects.count() == 1
    if fmt == "json":
        assert json.loads(text) == {"queue": "jobs", "deleted": 2}
    else:
        assert text == "deleted 2 active messages from queue 'jobs'\n"


@FORMATS
def test_queue_metrics(fmt: str, admin: PgqrsAdmin, queue: Queue) -> None:
    admin.create_queue("other")
    Producer("jobs").batch_enqueue([{"n": 1}, {"n": 2}, {"n": 3}])
    Producer("jobs").enqueue({"later": True}, delay=3600)
    consumer = Consumer("jobs")
    consumer.archive(consumer.dequeue())
    consumer.dequeue()
    before = server_now()
    one = out(fmt, "queue", "metrics", "jobs")
    after = server_now()
    every = out(fmt, "queue", "metrics")
    if fmt == "json":
        data = json.loads(one)
        # The ready message has waited since its vt, up to the metrics statement.
        since = Message.objects.for_queue("jobs").ready().get().vt
        waited = data["oldest_ready_age"]
        assert (before - since).total_seconds() <= waited <= (after - since).total_seconds()
        assert list(data) == METRICS_KEYS
        assert (data["ready"], data["delayed"], data["in_flight"], data["succeeded"]) == (
            1,
            1,
            1,
            1,
        )
        assert data["pending"] == 3
        assert [row["name"] for row in json.loads(every)] == ["jobs", "other"]
        assert list(json.loads(every)[1]) == METRICS_KEYS
    else:
        (row,) = assert_table(one, METRICS_HEADERS)
        assert row[:9] == ["jobs", "1", "1", "1", "1", "1", "0", "0", "0"]
        rows = assert_table(every, METRICS_HEADERS)
        assert [r[0] for r in rows] == ["jobs", "other"] and rows[1][9] == "-"


@FORMATS
@pytest.mark.parametrize("action", ["pause", "resume"])
def test_queue_pause_and_resume(fmt: str, action: str, queue: Queue) -> None:
    Queue.objects.filter(pk=queue.pk).update(paused=action == "resume")
    text = out(fmt, "queue", action, "jobs")
    queue.refresh_from_db()
    assert queue.paused is (action == "pause")
    if fmt == "json":
        assert json.loads(text)["paused"] is queue.paused
    else:
        assert text == f"queue 'jobs' {action}d\n"


# -- messages ---------------------------------------------------------------------------------


@FORMATS
def test_message_send(fmt: str, queue: Queue) -> None:
    text = out(
        fmt,
        "message",
        "send",
        "jobs",
        '{"to": "ada@example.com", "n": [1, 2]}',
        "--priority",
        "-3",
        "--delay",
        "10m",
        "--dedupe-key",
        "ada",
    )
    message = Message.objects.get()
    assert message.payload == {"to": "ada@example.com", "n": [1, 2]}
    assert (message.priority, message.dedupe_key) == (-3, "ada")
    delay = (message.vt - message.enqueued_at).total_seconds()
    assert delay == pytest.approx(600, abs=1)
    if fmt == "json":
        data = json.loads(text)
        assert list(data) == MESSAGE_KEYS
        assert data["id"] == message.id and data["payload"] == message.payload
        assert iso(data["visible_at"]) == message.vt and data["claimed_at"] is None
    else:
        values = assert_record(text, MESSAGE_KEYS)
        assert values["id"] == str(message.id)
        assert json.loads(values["payload"]) == message.payload


@pytest.mark.parametrize("payload", ['"text"', "42", "null", "[]", '{"deep": {"er": [true]}}'])
def test_message_send_takes_any_json_document(payload: str, queue: Queue) -> None:
    call("message", "send", "jobs", payload)
    assert Message.objects.get().payload == json.loads(payload)


@FORMATS
def test_message_send_file(fmt: str, queue: Queue, tmp_path: Path) -> None:
    path = tmp_path / "payloads.jsonl"
    path.write_text("".join(f'{{"n": {i}}}\n' for i in range(25)) + "\n   \n")
    text = out(
        fmt, "message", "send", "jobs", "--file", path, "--batch-size", "10", "--priority", "4"
    )
    messages = list(Message.objects.order_by("id"))
    assert [m.payload for m in messages] == [{"n": i} for i in range(25)]
    assert {m.priority for m in messages} == {4}
    first, last = messages[0].id, messages[-1].id
    if fmt == "json":
        assert json.loads(text) == {"queue": "jobs", "sent": 25, "first_id": first, "last_id": last}
    else:
        assert text == f"sent 25 messages to queue 'jobs' (ids {first}..{last})\n"


def test_message_send_file_from_stdin(queue: Queue) -> None:
    lines = '{"a": 1}\n["b"]\n"c"\n'
    data = call_json("message", "send", "jobs", "--file", "-", stdin=io.StringIO(lines))
    assert data["sent"] == 3
    assert [m.payload for m in Message.objects.order_by("id")] == [{"a": 1}, ["b"], "c"]
    result = run_cli("message", "send", "jobs", "--file", "-", stdin='{"d": 4}\n')
    assert result.code == 0 and result.err == "" and Message.objects.count() == 4


def test_message_send_file_is_all_or_nothing(queue: Queue, tmp_path: Path) -> None:
    """A bad line after several full batches: nothing is enqueued, the line is named."""
    path = tmp_path / "payloads.jsonl"
    path.write_text("".join(f'{{"n": {i}}}\n' for i in range(30)) + "{oops\n")
    result = run_cli("message", "send", "jobs", "--file", path, "--batch-size", "10")
    assert result.code == 2 and not Message.objects.exists()
    assert result.err_lines[0].startswith("pgqrs: error: line 31: invalid JSON")
    assert len(result.err_lines) == 1


def test_message_send_file_names_the_line_the_api_rejects(queue: Queue, tmp_path: Path) -> None:
    path = tmp_path / "payloads.jsonl"
    deep = "[" * 40 + "]" * 40
    path.write_text('{"ok": 1}\n{"ok": 2}\n' + deep + "\n")
    result = run_cli("message", "send", "jobs", "--file", path)
    assert result.code == 2 and not Message.objects.exists()
    assert result.err_lines == [
        "pgqrs: error: line 3: payload nests deeper than MAX_PAYLOAD_DEPTH=32"
    ]


@FORMATS
def test_message_read_claims_under_a_lease(fmt: str, queue: Queue) -> None:
    sent = Producer("jobs").batch_enqueue([{"n": i} for i in range(5)])
    text = out(fmt, "message", "read", "jobs", "--count", "3", "--lock-time", "2m")
    claimed = Message.objects.filter(claimed_at__isnull=False).order_by("id")
    assert [m.id for m in claimed] == [m.id for m in sent[:3]]
    for message in claimed:
        assert message.read_ct == 1
        lease = (message.vt - message.claimed_at).total_seconds()
        assert lease == pytest.approx(120, abs=1)
    assert Message.objects.ready().count() == 2
    if fmt == "json":
        data = json.loads(text)
        assert [list(row) for row in data] == [MESSAGE_KEYS] * 3
        assert [row["id"] for row in data] == [m.id for m in sent[:3]]
        assert all(row["read_ct"] == 1 and row["claimed_at"] for row in data)
    else:
        rows = assert_table(text, MESSAGE_HEADERS)
        assert [row[0] for row in rows] == [str(m.id) for m in sent[:3]]
        assert rows[0][5] == '{"n":0}'


def test_message_read_defaults_to_one_message_and_the_queue_lease(queue: Queue) -> None:
    Producer("jobs").batch_enqueue([{"n": 1}, {"n": 2}])
    assert len(call_json("message", "read", "jobs")) == 1
    message = Message.objects.get(claimed_at__isnull=False)
    assert (message.vt - message.claimed_at).total_seconds() == pytest.approx(30, abs=1)


@FORMATS
def test_message_read_on_an_empty_queue(fmt: str, queue: Queue) -> None:
    text = out(fmt, "message", "read", "jobs")
    assert text == ("[]\n" if fmt == "json" else "no ready message in queue 'jobs'\n")


@FORMATS
def test_message_read_archive_lists_archived_messages(fmt: str, queue: Queue) -> None:
    Producer("jobs").batch_enqueue([{"n": i} for i in range(4)])
    consumer = Consumer("jobs")
    batch = consumer.dequeue_batch(4)
    consumer.archive_batch(batch, results=[{"r": i} for i in range(4)])
    before = list(Archive.objects.values_list("id", "archived_at"))
    text = out(fmt, "message", "read", "jobs", "--archive", "--count", "2")
    assert list(Archive.objects.values_list("id", "archived_at")) == before  # only read
    newest = [row.id for row in Archive.objects.all()[:2]]
    if fmt == "json":
        data = json.loads(text)
        assert [list(row) for row in data] == [ARCHIVE_KEYS] * 2
        assert [row["id"] for row in data] == newest
        assert {row["outcome"] for row in data} == {"succeeded"}
    else:
        rows = assert_table(text, ARCHIVE_HEADERS)
        assert [int(row[0]) for row in rows] == newest


@FORMATS
def test_message_dequeue_archives_the_next_message(fmt: str, queue: Queue) -> None:
    low = Producer("jobs").enqueue({"n": "low"})
    high = Producer("jobs").enqueue({"n": "high"}, priority=9)
    text = out(fmt, "message", "dequeue", "jobs")
    assert list(Message.objects.values_list("id", flat=True)) == [low.id]
    row = Archive.objects.get()
    assert (row.id, row.outcome, row.read_ct) == (high.id, "succeeded", 1)
    if fmt == "json":
        data = json.loads(text)
        assert list(data) == MESSAGE_KEYS and data["id"] == high.id
    else:
        assert text.endswith(f"\n\nmessage {high.id} archived\n")
        assert 'payload      {"n":"high"}' in text


def test_message_dequeue_delete_and_empty(queue: Queue) -> None:
    sent = Producer("jobs").enqueue({"n": 1})
    data = call_json("message", "dequeue", "jobs", "--delete")
    assert data["id"] == sent.id
    assert not Message.objects.exists() and not Archive.objects.exists()
    assert call_json("message", "dequeue", "jobs") is None
    assert call("message", "dequeue", "jobs") == "no ready message in queue 'jobs'\n"


@FORMATS
def test_message_delete(fmt: str, queue: Queue) -> None:
    keep, gone = Producer("jobs").batch_enqueue([{"n": 1}, {"n": 2}])
    Consumer("jobs").dequeue_batch(2)  # leased messages can be deleted too
    text = out(fmt, "message", "delete", "jobs", gone.id)
    assert list(Message.objects.values_list("id", flat=True)) == [keep.id]
    if fmt == "json":
        assert json.loads(text) == {"queue": "jobs", "id": gone.id, "deleted": True}
    else:
        assert text == f"deleted message {gone.id} from queue 'jobs'\n"


@FORMATS
def test_message_count(fmt: str, queue: Queue) -> None:
    Producer("jobs").batch_enqueue([{"n": i} for i in range(4)])
    Producer("jobs").enqueue({"later": 1}, delay=600)
    consumer = Consumer("jobs")
    consumer.dequeue()
    consumer.fail(consumer.dequeue(), "boom", retry=False)
    active = out(fmt, "message", "count", "jobs")
    archived = out(fmt, "message", "count", "jobs", "--archive")
    if fmt == "json":
        assert json.loads(active) == {
            "queue": "jobs",
            "archive": False,
            "count": 4,
            "ready": 2,
            "delayed": 1,
            "in_flight": 1,
        }
        assert json.loads(archived) == {
            "queue": "jobs",
            "archive": True,
            "count": 1,
            "succeeded": 0,
            "failed": 1,
            "dead": 0,
            "cancelled": 0,
        }
    else:
        keys = ["queue", "archive", "count", "ready", "delayed", "in_flight"]
        assert assert_record(active, keys)["count"] == "4"
        keys = ["queue", "archive", "count", "succeeded", "failed", "dead", "cancelled"]
        assert assert_record(archived, keys)["failed"] == "1"


@FORMATS
def test_message_show(fmt: str, queue: Queue) -> None:
    done, active = Producer("jobs").batch_enqueue([{"n": 1}, {"n": 2}])
    worker = PgqrsAdmin().register_worker(["jobs"], name="w-show")
    consumer = Consumer("jobs", worker)
    consumer.archive(consumer.dequeue(), result={"ok": True})
    consumer.dequeue()
    shown = out(fmt, "message", "show", "jobs", active.id)
    archived = out(fmt, "message", "show", "jobs", done.id, "--archive")
    if fmt == "json":
        data = json.loads(shown)
        assert list(data) == MESSAGE_KEYS
        assert (data["id"], data["consumer"], data["read_ct"]) == (active.id, "w-show", 1)
        row = json.loads(archived)
        assert list(row) == ARCHIVE_KEYS
        assert (row["id"], row["result"], row["worker"]) == (done.id, {"ok": True}, "w-show")
        assert iso(row["archived_at"]) == Archive.objects.get().archived_at
    else:
        assert assert_record(shown, MESSAGE_KEYS)["consumer"] == "w-show"
        assert assert_record(archived, ARCHIVE_KEYS)["result"] == '{"ok":true}'


@FORMATS
def test_message_replay(fmt: str, queue: Queue) -> None:
    sent = Producer("jobs").enqueue({"n": 1})
    consumer = Consumer("jobs")
    consumer.fail(consumer.dequeue(), "boom", retry=False)
    text = out(fmt, "message", "replay", "jobs", sent.id)
    message = Message.objects.get()
    assert (message.id, message.read_ct) == (sent.id, 0) and not Archive.objects.exists()
    if fmt == "json":
        assert json.loads(text)["id"] == sent.id
    else:
        assert assert_record(text, MESSAGE_KEYS)["id"] == str(sent.id)


# -- archive ----------------------------------------------------------------------------------


def _archive(n: int) -> list[int]:
    Producer("jobs").batch_enqueue([{"n": i} for i in range(n)])
    consumer = Consumer("jobs")
    batch = consumer.dequeue_batch(n)
    consumer.archive_batch(batch)
    return [row.id for row in Archive.objects.all()]  # newest first


@FORMATS
def test_archive_list(fmt: str, queue: Queue) -> None:
    ids = _archive(6)
    text = out(fmt, "archive", "list", "jobs", "--limit", "3", "--offset", "2")
    if fmt == "json":
        data = json.loads(text)
        assert [list(row) for row in data] == [ARCHIVE_KEYS] * 3
        assert [row["id"] for row in data] == ids[2:5]
    else:
        rows = assert_table(text, ARCHIVE_HEADERS)
        assert [int(row[0]) for row in rows] == ids[2:5]
    assert call_json("archive", "list", "jobs") == call_json(
        "message", "read", "jobs", "--archive", "--count", "50"
    )


@FORMATS
def test_archive_purge(fmt: str, queue: Queue) -> None:
    ids = _archive(4)
    Archive.objects.filter(pk__in=ids[:2]).update(
        archived_at=F("archived_at") - dt.timedelta(days=8)
    )
    text = out(fmt, "archive", "purge", "jobs", "--older-than", "7d")
    assert sorted(Archive.objects.values_list("id", flat=True)) == sorted(ids[2:])
    if fmt == "json":
        assert json.loads(text) == {"queue": "jobs", "deleted": 2, "older_than": 604800.0}
    else:
        assert text == "deleted 2 archived messages archived over 7d ago from queue 'jobs'\n"
    data = call_json("archive", "purge", "jobs")
    assert data == {"queue": "jobs", "deleted": 2, "older_than": None}
    assert not Archive.objects.exists()


# -- workers ----------------------------------------------------------------------------------


@pytest.fixture
def workers(admin: PgqrsAdmin, queue: Queue) -> tuple[Worker, Worker]:
    live = admin.register_worker(["jobs"], name="live-1")
    stale = admin.register_worker(["jobs"], name="stale-1")
    Worker.objects.filter(pk=stale.pk).update(heartbeat_at=timezone.now() - dt.timedelta(hours=1))
    return live, stale


@FORMATS
def test_worker_list(fmt: str, workers: tuple[Worker, Worker], admin: PgqrsAdmin) -> None:
    admin.create_queue("other")
    gone = admin.register_worker(["other"], name="gone-1")
    admin.stop_worker(gone)
    text = out(fmt, "worker", "list")
    running = out(fmt, "worker", "list", "--running", "--queue", "jobs")
    if fmt == "json":
        data = json.loads(text)
        assert [list(row) for row in data] == [WORKER_KEYS] * 3
        by_name = {row["name"]: row for row in data}
        assert by_name["stale-1"]["stale"] is True and by_name["live-1"]["stale"] is False
        assert by_name["gone-1"]["status"] == "stopped" and by_name["gone-1"]["queues"] == ["other"]
        assert {row["name"] for row in json.loads(running)} == {"live-1", "stale-1"}
    else:
        rows = assert_table(text, WORKER_HEADERS)
        assert {row[1]: (row[4], row[5]) for row in rows} == {
            "live-1": ("ready", "no"),
            "stale-1": ("ready", "yes"),
            "gone-1": ("stopped", "no"),
        }
        assert len(assert_table(running, WORKER_HEADERS)) == 2


@FORMATS
def test_worker_show_by_name_or_id(fmt: str, workers: tuple[Worker, Worker]) -> None:
    _, stale = workers
    by_name, by_id = out(fmt, "worker", "show", "stale-1"), out(fmt, "worker", "show", stale.pk)
    assert by_name == by_id
    if fmt == "json":
        data = json.loads(by_name)
        assert list(data) == WORKER_KEYS
        assert (data["id"], data["stale"], data["queues"], data["pid"]) == (
            stale.pk,
            True,
            ["jobs"],
            stale.pid,
        )
        assert iso(data["heartbeat_at"]) < timezone.now() - dt.timedelta(minutes=59)
    else:
        values = assert_record(by_name, WORKER_KEYS)
        assert (values["name"], values["stale"], values["queues"]) == ("stale-1", "yes", '["jobs"]')


@FORMATS
@pytest.mark.parametrize(
    ("action", "field", "value", "said"),
    [
        ("suspend", "status", "suspended", "suspended"),
        ("resume", "status", "ready", "resumed"),
        ("shutdown", "shutdown_requested", True, "asked to shut down"),
    ],
)
def test_worker_suspend_resume_shutdown(
    fmt: str, action: str, field: str, value: object, said: str, workers: tuple[Worker, Worker]
) -> None:
    live, _ = workers
    if action == "resume":
        Worker.objects.filter(pk=live.pk).update(status="suspended")
    text = out(fmt, "worker", action, "live-1")
    live.refresh_from_db()
    assert getattr(live, field) == value
    if fmt == "json":
        data = json.loads(text)
        assert list(data) == WORKER_KEYS and data[field] == value
    else:
        assert text == f"worker 'live-1' {said}\n"


@FORMATS
def test_worker_reclaim(fmt: str, workers: tuple[Worker, Worker]) -> None:
    live, stale = workers
    Producer("jobs").batch_enqueue([{"n": 1}, {"n": 2}, {"n": 3}])
    Consumer("jobs", stale).dequeue_batch(2)
    Consumer("jobs", live).dequeue_batch(1)
    text = out(fmt, "worker", "reclaim", "--timeout", "10m")
    stale.refresh_from_db()
    assert stale.status == "stopped"
    assert Message.objects.ready().count() == 2 and Message.objects.in_flight().count() == 1
    if fmt == "json":
        assert json.loads(text) == {"workers": 1, "messages": 2}
    else:
        assert text == "stopped 1 stale workers; 2 messages made ready again\n"


@FORMATS
def test_worker_purge(fmt: str, admin: PgqrsAdmin, workers: tuple[Worker, Worker]) -> None:
    _, stale = workers
    admin.stop_worker(stale)
    Worker.objects.filter(pk=stale.pk).update(stopped_at=timezone.now() - dt.timedelta(days=40))
    recent = admin.register_worker(["jobs"], name="recent")
    admin.stop_worker(recent)
    text = out(fmt, "worker", "purge", "--older-than", "30d")
    assert set(Worker.objects.values_list("name", flat=True)) == {"live-1", "recent"}
    if fmt == "json":
        assert json.loads(text) == {"deleted": 1, "older_than": 30 * 86400.0}
    else:
        assert text == "deleted 1 workers stopped over 30d ago\n"


@FORMATS
def test_worker_health_fails_on_stale_workers_and_unserved_queues(
    fmt: str, admin: PgqrsAdmin, workers: tuple[Worker, Worker]
) -> None:
    admin.create_queue("orphan")
    Producer("orphan").enqueue({"n": 1})
    admin.create_queue("paused-orphan")
    Producer("paused-orphan").enqueue({"n": 1})
    admin.pause_queue("paused-orphan")
    result = run_cli("--format", fmt, "worker", "health")
    assert result.code == 1
    assert result.err_lines == [
        "pgqrs: error: unhealthy: 1 stale worker(s): stale-1; 1 queue(s) with ready messages "
        "and no live worker: orphan"
    ]
    if fmt == "json":
        assert result.json == {
            "ok": False,
            "stale_workers": ["stale-1"],
            "unserved_queues": ["orphan"],
            "running_workers": 2,
        }
    else:
        assert result.out.startswith("unhealthy: 2 running worker(s)\n  1 stale worker(s)")


@FORMATS
def test_worker_health_ok(fmt: str, admin: PgqrsAdmin, workers: tuple[Worker, Worker]) -> None:
    _, stale = workers
    admin.stop_worker(stale)
    Producer("jobs").enqueue({"n": 1})  # served by live-1
    text = out(fmt, "worker", "health")
    if fmt == "json":
        assert json.loads(text) == {
            "ok": True,
            "stale_workers": [],
            "unserved_queues": [],
            "running_workers": 1,
        }
    else:
        assert text == "healthy: 1 running worker(s)\n"


def test_worker_health_counts_a_suspended_worker_as_not_serving(
    admin: PgqrsAdmin, workers: tuple[Worker, Worker]
) -> None:
    _, stale = workers
    admin.stop_worker(stale)
    admin.suspend_worker("live-1")
    Producer("jobs").enqueue({"n": 1})
    result = run_cli("--format", "json", "worker", "health", "--timeout", "1h30m")
    assert result.code == 1 and result.json["unserved_queues"] == ["jobs"]


# -- stats and global flags -----------------------------------------------------------------


@FORMATS
def test_stats(fmt: str, queue: Queue, admin: PgqrsAdmin) -> None:
    Producer("jobs").batch_enqueue([{"n": 1}, {"n": 2}])
    admin.register_worker(["jobs"], name="w")
    text = out(fmt, "stats")
    if fmt == "json":
        data = json.loads(text)
        assert list(data) == [
            "database",
            "queues",
            "paused_queues",
            "workers",
            "stale_workers",
            "ready",
            "delayed",
            "in_flight",
            "archived",
            "dead",
            "table_bytes",
        ]
        assert (data["queues"], data["ready"]) == (1, 2)
        assert data["workers"] == {"ready": 1, "suspended": 0, "stopped": 0}
        assert set(data["table_bytes"]) == {
            "pgqrs_queue",
            "pgqrs_worker",
            "pgqrs_worker_queues",
            "pgqrs_message",
            "pgqrs_archive",
            "pgqrs_schedule",
        }
    else:
        lines = dict(line.split(None, 1) for line in text.splitlines())
        assert lines["queues"] == "1" and lines["workers.ready"] == "1"
        assert lines["table_bytes.pgqrs_message"].endswith("kB")


def test_global_flags_go_before_or_after_the_subcommand(queue: Queue) -> None:
    assert call("--format", "json", "queue", "get", "jobs") == call(
        "queue", "get", "jobs", "--format", "json"
    )
    # The flag given after the subcommand wins over the one before it.
    assert call("--format", "json", "queue", "list", "--format", "table").startswith("NAME")


def test_out_writes_the_output_to_a_file(queue: Queue, tmp_path: Path) -> None:
    target = tmp_path / "queues.json"
    assert call("queue", "list", "--format", "json", "--out", target) == ""
    assert [row["name"] for row in json.loads(target.read_text())] == ["jobs"]


def test_log_level_sets_the_level_of_the_pgqrs_loggers(
    queue: Queue, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"n": 1}\n')
    assert run_cli("message", "send", "jobs", "--file", path).code == 0
    assert not [r for r in caplog.records if r.name.startswith("pgqrs_django")]
    assert run_cli("--log-level", "DEBUG", "message", "send", "jobs", "--file", path).code == 0
    assert "enqueued 1 messages on 'jobs' (1 so far)" in caplog.messages


def test_database_flag_selects_the_alias(queue: Queue) -> None:
    assert call_json("--database", conf.database(), "queue", "list")[0]["name"] == "jobs"
    with pytest.raises(CommandError) as info:
        call("--database", "sqlite", "queue", "list")
    assert info.value.returncode == 2 and "needs PostgreSQL" in str(info.value)


def test_tables_missing_is_an_operational_failure(admin: PgqrsAdmin) -> None:
    admin.uninstall()
    for args in (["queue", "list"], ["queue", "get", "jobs"], ["stats"], ["worker", "health"]):
        result = run_in_savepoint(*args)
        assert result.code == 1, args
        (line,) = result.err_lines
        assert line.startswith("pgqrs: error: the pgqrs tables do not exist"), line
        assert "install" in line
