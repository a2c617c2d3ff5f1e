"""Bad input everywhere: the Python API, ``manage.py pgqrs`` and ``manage.py pgqrs_worker``.

Every case must end in a clear pgqrs exception (API) or one line on stderr with exit code 2
(commands), and must write nothing: each test snapshots every pgqrs table (and the count of
rows in each) before and after. tests/test_cli_errors.py covers every CLI subcommand with
bad names and numbers; here the same kinds of bad input go through every entry point.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import math
from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings

from pgqrs_django import Consumer, PgqrsAdmin, Producer
from pgqrs_django.exceptions import (
    InvalidInput,
    InvalidQueueName,
    PayloadNotSerializable,
    PayloadTooDeep,
    PayloadTooLarge,
    PgqrsError,
    QueueNotFound,
)
from pgqrs_django.management.commands.pgqrs_worker import Command as WorkerCommand
from pgqrs_django.models import Message, Queue
from pgqrs_django.validation import QUEUE_NAME_MAX_LENGTH
from tests.cli_support import run_cli, snapshot

pytestmark = pytest.mark.django_db

TABLES = ("pgqrs_queue", "pgqrs_message", "pgqrs_archive", "pgqrs_worker")


def row_counts() -> dict[str, int]:
    with connection.cursor() as cursor:
        counts = {}
        for table in TABLES:
            cursor.execute(f"SELECT count(*) FROM {table}")
            counts[table] = cursor.fetchone()[0]
    return counts


@contextlib.contextmanager
def writes_nothing() -> Any:
    """Assert that the block changes no row of any pgqrs table."""
    counts, rows = row_counts(), snapshot()
    yield
    assert row_counts() == counts
    assert snapshot() == rows


def deep(levels: int) -> object:
    value: object = "leaf"
    for _ in range(levels):
        value = [value]
    return value


class Unserialisable:
    pass


# -- payloads ----------------------------------------------------------------------------

#: (payload, exception): every kind of payload jsonb cannot hold, or pgqrs refuses.
BAD_PAYLOADS: list[tuple[str, object, type[PgqrsError]]] = [
    ("object", {"x": Unserialisable()}, PayloadNotSerializable),
    ("set", {1, 2}, PayloadNotSerializable),
    ("bytes", b"raw", PayloadNotSerializable),
    ("datetime", {"at": dt.datetime(2026, 1, 1)}, PayloadNotSerializable),
    ("non-string-key", {(1, 2): "tuple key"}, PayloadNotSerializable),
    ("nan", {"x": math.nan}, PayloadNotSerializable),
    ("infinity", [math.inf], PayloadNotSerializable),
    ("-infinity", -math.inf, PayloadNotSerializable),
    ("nul-in-value", {"x": "a\x00b"}, PayloadNotSerializable),
    ("nul-in-key", {"a\x00": 1}, PayloadNotSerializable),
    ("nul-alone", "\x00", PayloadNotSerializable),
    ("nested-nul", {"a": [{"b": ["\u0000"]}]}, PayloadNotSerializable),
    ("deep-33", deep(33), PayloadTooDeep),
    ("deep-100000", deep(100_000), PayloadTooDeep),  # beyond Python's recursion limit
    ("oversize", "x" * (1_048_576 + 1), PayloadTooLarge),
    ("oversize-utf8", "é" * 600_000, PayloadTooLarge),  # 600,000 chars, 1.2 MB of UTF-8
]

ENQUEUE_CALLS: dict[str, Callable[[Producer, object], object]] = {
    "enqueue": lambda p, payload: p.enqueue(payload),
    "enqueue_delayed": lambda p, payload: p.enqueue_delayed(payload, 5),
    "enqueue_at": lambda p, payload: p.enqueue_at(payload, dt.datetime.now(dt.UTC)),
    "batch_enqueue-last": lambda p, payload: p.batch_enqueue([{"ok": 1}] * 3 + [payload]),
    "aenqueue": lambda p, payload: asyncio.run(p.aenqueue(payload)),
}


@pytest.mark.parametrize("call", ENQUEUE_CALLS.values(), ids=ENQUEUE_CALLS.keys())
@pytest.mark.parametrize(
    ("payload", "error"), [c[1:] for c in BAD_PAYLOADS], ids=[c[0] for c in BAD_PAYLOADS]
)
def test_bad_payloads_raise_and_write_nothing(
    queue: Queue, call: Callable[[Producer, object], object], payload: object, error: type
) -> None:
    with writes_nothing(), pytest.raises(error) as caught:
        call(Producer("jobs"), payload)
    assert isinstance(caught.value, ValueError)  # every input error is also a ValueError
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 300


def test_nul_is_refused_before_the_database_sees_it(queue: Queue) -> None:
    """PostgreSQL would answer a NUL with a DataError (unsupported Unicode escape sequence);
    pgqrs refuses it itself, so no statement is sent."""
    with (
        writes_nothing(),
        CaptureQueriesContext(connection) as queries,
        pytest.raises(PayloadNotSerializable, match="NUL"),
    ):
        Producer("jobs").enqueue({"text": "before\x00after"})
    assert [q for q in queries.captured_queries if "INSERT" in q["sql"]] == []


def test_payloads_at_the_limits_are_accepted(queue: Queue) -> None:
    producer = Producer("jobs")
    producer.enqueue(deep(32))  # exactly MAX_PAYLOAD_DEPTH
    producer.enqueue("x" * (1_048_576 - 2))  # the quotes make it exactly MAX_PAYLOAD_BYTES
    producer.enqueue({"escaped": "\\u0000 is six characters, not a NUL", "uni": "ünï ✓ 🚀"})
    assert Message.objects.count() == 3
    assert Message.objects.filter(payload__escaped__startswith="\\u0000").count() == 1


# -- batches -------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_batch_of_100000_with_one_bad_payload_at_the_end_writes_nothing(queue: Queue) -> None:
    payloads: list[object] = [{"n": n} for n in range(100_000)]
    payloads.append({"n": math.nan})
    with writes_nothing(), pytest.raises(PayloadNotSerializable):
        Producer("jobs").batch_enqueue(payloads)


def test_a_batch_over_max_batch_bytes_is_refused_before_sending(queue: Queue) -> None:
    # jsonb holds at most 256 MiB, and a batch travels as one jsonb array: MAX_BATCH_BYTES
    # (128 MiB by default) refuses larger batches with a clear error instead of a DataError.
    payloads = [{"n": n, "pad": "p" * 100} for n in range(1000)]
    with override_settings(PGQRS={"MAX_BATCH_BYTES": 50_000}):
        with (
            writes_nothing(),
            CaptureQueriesContext(connection) as queries,
            pytest.raises(PayloadTooLarge, match="MAX_BATCH_BYTES=50000"),
        ):
            Producer("jobs").batch_enqueue(payloads)
        assert not [q for q in queries.captured_queries if "INSERT" in q["sql"]]
        Producer("jobs").batch_enqueue(payloads[:100])  # under the limit: accepted
    assert Message.objects.count() == 100


def test_dedupe_keys_of_the_wrong_kind_or_length(queue: Queue) -> None:
    producer = Producer("jobs")
    for keys in (["a"], ["a", "b", "c"], ["", "b"], ["k" * 256, None], ["nul\x00", None]):
        with writes_nothing(), pytest.raises(InvalidInput):
            producer.batch_enqueue([{}, {}], dedupe_keys=keys)
    for key in ("", "k" * 256, "a\x00", 5):
        with writes_nothing(), pytest.raises(InvalidInput):
            producer.enqueue({}, dedupe_key=key)  # type: ignore[arg-type]


# -- queue names ---------------------------------------------------------------------------

BAD_QUEUE_NAMES = [
    "",
    " ",
    "a b",
    "it's",
    'say "hi"',
    "jobs; DROP TABLE pgqrs_message; --",
    "x' OR '1'='1",
    "jobs)--",
    "%(queue)s",
    "ünïcödé",
    "队列",
    "emoji🚀",
    "tab\tname",
    "new\nline",
    "nul\x00name",
    "q" * (QUEUE_NAME_MAX_LENGTH + 1),
    "q" * 100_000,
    None,
    42,
]


@pytest.mark.parametrize("name", BAD_QUEUE_NAMES, ids=range(len(BAD_QUEUE_NAMES)))
def test_bad_queue_names_are_refused_by_every_api(queue: Queue, name: Any) -> None:
    admin = PgqrsAdmin()
    calls: list[Callable[[], object]] = [
        lambda: admin.create_queue(name),
        lambda: admin.get_queue(name),
        lambda: admin.delete_queue(name),
        lambda: admin.purge_queue(name),
        lambda: admin.queue_metrics(name),
        lambda: admin.pause_queue(name),
        lambda: Producer(name).enqueue({}),
        lambda: Consumer(name).dequeue(),
        lambda: asyncio.run(Producer(name).aenqueue({})),
    ]
    if name is not None:  # no dead-letter queue
        calls.append(lambda: admin.create_queue("fine", dead_letter_queue=name))
    for call in calls:
        with writes_nothing(), pytest.raises(InvalidQueueName) as caught:
            call()
        assert "\n" not in str(caught.value) and len(str(caught.value)) < 300


def test_names_that_are_valid_but_unknown_raise_queue_not_found(queue: Queue) -> None:
    for name in ("nope", "q" * QUEUE_NAME_MAX_LENGTH, "JOBS", "jobs.", "-"):
        with writes_nothing(), pytest.raises(QueueNotFound):
            Producer(name).enqueue({})


# -- delays, priorities, lock times, counts ------------------------------------------------

BAD_SECONDS: list[object] = [
    -1,
    -0.001,
    dt.timedelta(seconds=-1),
    math.nan,
    math.inf,
    -math.inf,
    1e30,
    366 * 24 * 3600 + 1,  # over MAX_DELAY
    dt.timedelta(days=10_000),
    "5",
    None,
    True,
    [5],
]
BAD_PRIORITIES: list[object] = [2**31, -(2**31) - 1, 10**100, 1.5, math.nan, "1", None, True]


@pytest.mark.parametrize("value", BAD_SECONDS, ids=range(len(BAD_SECONDS)))
def test_bad_delays_and_lock_times(queue: Queue, value: Any) -> None:
    producer, consumer = Producer("jobs"), Consumer("jobs")
    held = producer.enqueue({"held": True})
    assert consumer.dequeue() is not None
    calls: list[Callable[[], object]] = [
        lambda: producer.enqueue_delayed({}, value),
        lambda: producer.extend_visibility(held.id, value),
        lambda: consumer.extend_visibility(held.id, value),
    ]
    if value is not None:  # None means "the default" (or "everything") for these
        calls += [
            lambda: producer.enqueue({}, delay=value),
            lambda: producer.batch_enqueue([{}, {}], delay=value),
            lambda: consumer.dequeue_batch(5, lock_time=value),
            lambda: PgqrsAdmin().create_queue("fine", visibility_timeout=value),
            lambda: PgqrsAdmin().purge_archive("jobs", older_than=value),
        ]
    for call in calls:
        with writes_nothing(), pytest.raises(InvalidInput):
            call()


def test_zero_lock_time_is_refused_and_zero_delay_allowed(queue: Queue) -> None:
    with writes_nothing(), pytest.raises(InvalidInput):
        Consumer("jobs").dequeue_batch(1, lock_time=0)
    Producer("jobs").enqueue({}, delay=0)
    assert Message.objects.ready().count() == 1


@pytest.mark.parametrize("value", BAD_PRIORITIES, ids=range(len(BAD_PRIORITIES)))
def test_bad_priorities(queue: Queue, value: Any) -> None:
    producer = Producer("jobs")
    for call in (
        lambda: producer.enqueue({}, priority=value),
        lambda: producer.batch_enqueue([{}], priority=value),
        lambda: producer.enqueue_at({}, dt.datetime.now(dt.UTC), priority=value),
    ):
        with writes_nothing(), pytest.raises(InvalidInput):
            call()


def test_extreme_but_valid_priorities_are_stored(queue: Queue) -> None:
    producer = Producer("jobs")
    producer.enqueue({"p": "max"}, priority=2**31 - 1)
    producer.enqueue({"p": "min"}, priority=-(2**31))
    assert [m.payload["p"] for m in Consumer("jobs").dequeue_batch(2)] == ["max", "min"]


@pytest.mark.parametrize("count", [0, -1, 10_001, 10**30, 1.5, "3", True])
def test_bad_batch_sizes_and_attempts(queue: Queue, count: Any) -> None:
    calls = [lambda: Consumer("jobs").dequeue_batch(count)]
    if count != 10_001:  # a fine number of attempts
        calls.append(lambda: PgqrsAdmin().create_queue("fine", max_attempts=count))
    for call in calls:
        with writes_nothing(), pytest.raises(InvalidInput):
            call()


def test_enqueue_at_needs_an_aware_datetime(queue: Queue) -> None:
    for when in (dt.datetime(2030, 1, 1), "2030-01-01T00:00:00Z", 1_900_000_000, None):
        with writes_nothing(), pytest.raises(InvalidInput):
            Producer("jobs").enqueue_at({}, when)  # type: ignore[arg-type]


def test_bad_rate_limits() -> None:
    for kwargs in ({"rate_limit": 0}, {"rate_limit": -5}, {"rate_limit": 5, "burst": 0.5}):
        with pytest.raises(InvalidInput):
            Producer("jobs", **kwargs)  # type: ignore[arg-type]


# -- the operator CLI ------------------------------------------------------------------------

CLI_CASES: dict[str, list[str]] = {
    "nan": ["message", "send", "jobs", "NaN"],
    "infinity": ["message", "send", "jobs", '{"x": Infinity}'],
    "-infinity": ["message", "send", "jobs", "[-Infinity]"],
    "nul-escape": ["message", "send", "jobs", '{"x": "a\\u0000b"}'],
    "nul-key": ["message", "send", "jobs", '{"\\u0000": 1}'],
    "nul-raw": ["message", "send", "jobs", '"a\x00b"'],
    "deep": ["message", "send", "jobs", "[" * 33 + "]" * 33],
    "very-deep": ["message", "send", "jobs", "[" * 100_000 + "]" * 100_000],
    "oversize": ["message", "send", "jobs", '"' + "x" * 1_048_576 + '"'],
    "not-json": ["message", "send", "jobs", "{'python': 'dict'}"],
    "sql-name": ["message", "send", "jobs'; DROP TABLE pgqrs_message; --", "{}"],
    "quote-name": ["message", "send", 'jo"bs', "{}"],
    "unicode-name": ["message", "send", "ünï", "{}"],
    "empty-name": ["message", "send", "", "{}"],
    "long-name": ["message", "send", "q" * (QUEUE_NAME_MAX_LENGTH + 1), "{}"],
    "create-sql-name": ["queue", "create", "x' OR '1'='1"],
    "negative-delay": ["message", "send", "jobs", "{}", "--delay", "-5"],
    "absurd-delay": ["message", "send", "jobs", "{}", "--delay", "1e30"],
    "nan-delay": ["message", "send", "jobs", "{}", "--delay", "nan"],
    "huge-priority": ["message", "send", "jobs", "{}", "--priority", str(2**31)],
    "tiny-priority": ["message", "send", "jobs", "{}", "--priority", str(-(2**31) - 1)],
    "negative-lock": ["message", "read", "jobs", "--lock-time", "-1"],
    "absurd-lock": ["message", "read", "jobs", "--lock-time", "1e30"],
    "nan-lock": ["message", "read", "jobs", "--lock-time", "nan"],
    "zero-count": ["message", "read", "jobs", "--count", "0"],
    "absurd-count": ["message", "read", "jobs", "--count", "100000"],
    "negative-visibility": ["queue", "create", "n1", "--visibility-timeout", "-1"],
    "absurd-visibility": ["queue", "create", "n1", "--visibility-timeout", "1e30"],
}


@pytest.mark.parametrize("args", CLI_CASES.values(), ids=CLI_CASES.keys())
def test_bad_input_to_the_cli_exits_2_and_writes_nothing(queue: Queue, args: list[str]) -> None:
    Producer("jobs").enqueue({"existing": True})
    with writes_nothing():
        result = run_cli(*args)
    assert result.code == 2, result
    assert len(result.err_lines) == 1 and result.err.startswith("pgqrs: error: "), result.err
    assert "Traceback" not in result.err and len(result.err) < 700
    assert result.out == ""


# -- the worker's flags ----------------------------------------------------------------------

WORKER_CASES: dict[str, list[str]] = {
    "sql-queue": ["--queue", "work'; DROP TABLE pgqrs_worker; --"],
    "quote-queue": ["--queue", 'wo"rk'],
    "unicode-queue": ["--queue", "wörk"],
    "empty-queue": ["--queue", ""],
    "long-queue": ["--queue", "q" * (QUEUE_NAME_MAX_LENGTH + 1)],
    "unknown-queue": ["--queue", "nope"],
    "no-handler": ["--queue", "jobs"],  # exists, but nothing handles it
    "zero-concurrency": ["--queue", "work", "--concurrency", "0"],
    "absurd-concurrency": ["--queue", "work", "--concurrency", "100000"],
    "negative-batch": ["--queue", "work", "--batch-size", "-1"],
    "absurd-batch": ["--queue", "work", "--batch-size", "10000000"],
    "negative-lock": ["--queue", "work", "--lock-time", "-1"],
    "zero-lock": ["--queue", "work", "--lock-time", "0"],
    "tiny-lock": ["--queue", "work", "--lock-time", "0.01"],
    "absurd-lock": ["--queue", "work", "--lock-time", "1e30"],
    "nan-lock": ["--queue", "work", "--lock-time", "nan"],
    "inf-poll": ["--queue", "work", "--poll-interval", "inf"],
    "absurd-poll": ["--queue", "work", "--poll-interval", "1e30"],
    "negative-poll": ["--queue", "work", "--poll-interval", "-1"],
    "negative-grace": ["--queue", "work", "--grace", "-1"],
    "absurd-grace": ["--queue", "work", "--grace", "1e30"],
    "zero-max-messages": ["--queue", "work", "--max-messages", "0"],
    "empty-name": ["--queue", "work", "--name", " "],
    "bad-handler": ["--queue", "work", "--handler", "no.such.module"],
    "bad-log-level": ["--queue", "work", "--log-level", "loud"],
}


def run_worker_command(*args: str) -> tuple[int, str]:
    """``manage.py pgqrs_worker *args`` in this process, as ``manage.py`` runs it (exit code
    from SystemExit, stderr captured)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        command = WorkerCommand()
        try:
            command.run_from_argv(["manage.py", "pgqrs_worker", *args])
        except SystemExit as exc:
            return int(exc.code or 0), err.getvalue()
        except CommandError as exc:  # pragma: no cover - run_from_argv turns these into exits
            return exc.returncode, str(exc)
    raise AssertionError(f"pgqrs_worker {args} did not exit: {err.getvalue()}")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("args", WORKER_CASES.values(), ids=WORKER_CASES.keys())
def test_bad_worker_flags_exit_2_with_one_line_and_write_nothing(args: list[str]) -> None:
    PgqrsAdmin().create_queue("work")
    PgqrsAdmin().create_queue("jobs")
    Producer("work").enqueue({"waiting": True})
    with writes_nothing():
        code, err = run_worker_command(*args)
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert len(err) < 700
