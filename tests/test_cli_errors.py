"""Bad input to ``manage.py pgqrs`` (exit 2, one line on stderr, nothing changed) and a
database that is down (exit 1, one line, within 10 seconds: the command's own connect
timeout)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pgqrs_django import Consumer, PgqrsAdmin, Producer, conf
from pgqrs_django.models import Queue
from tests.cli_support import (
    EVERY_SUBCOMMAND,
    ROOT,
    cli_env,
    database_alias,
    leaf_parsers,
    run_cli,
    snapshot,
    subprocess_cli,
)

# Queue names that must be refused: quotes, spaces, SQL, too long, empty, non-ASCII.
BAD_NAMES = [
    "a b",
    "it's",
    '"quoted"',
    "jobs; DROP TABLE pgqrs_queue; --",
    "x' OR '1'='1",
    "q" * 10_000,
    "",
    "naïve",
    "a/b",
    "tab\there",
]
# Commands that take a queue: ``{q}`` is replaced by each bad name (and by an unknown one).
QUEUE_COMMANDS = [
    ["queue", "get", "{q}"],
    ["queue", "delete", "{q}"],
    ["queue", "purge", "{q}"],
    ["queue", "metrics", "{q}"],
    ["queue", "pause", "{q}"],
    ["queue", "resume", "{q}"],
    ["queue", "create", "new", "--dead-letter-queue", "{q}"],
    ["message", "send", "{q}", "{}"],
    ["message", "read", "{q}"],
    ["message", "read", "{q}", "--archive"],
    ["message", "dequeue", "{q}"],
    ["message", "delete", "{q}", "1"],
    ["message", "count", "{q}"],
    ["message", "show", "{q}", "1"],
    ["message", "replay", "{q}", "1"],
    ["archive", "list", "{q}"],
    ["archive", "purge", "{q}"],
    ["worker", "list", "--queue", "{q}"],
]
# Unknown ids, bad numbers, bad JSON, conflicting flags: each is a usage or input error.
OTHER_CASES = [
    ["queue", "create", *[]],
    ["queue", "create", "jobs"],  # exists
    ["queue", "create", "self", "--dead-letter-queue", "self"],
    ["queue", "create", "n1", "--visibility-timeout", "0"],
    ["queue", "create", "n1", "--visibility-timeout", "-5"],
    ["queue", "create", "n1", "--visibility-timeout", "soon"],
    ["queue", "create", "n1", "--max-attempts", "0"],
    ["queue", "create", "n1", "--max-attempts", "-1"],
    ["queue", "create", "n1", "--max-attempts", "two"],
    ["queue", "create", "n1", "--max-attempts", "1.5"],
    ["queue", "create", "n1", "--max-attempts", "99999999"],
    ["message", "send", "jobs", "{bad json"],
    ["message", "send", "jobs", ""],
    ["message", "send", "jobs", "{'single': 'quotes'}"],
    ["message", "send", "jobs", "NaN"],
    ["message", "send", "jobs", '{"n": 1} trailing'],
    ["message", "send", "jobs", "[" * 40 + "]" * 40],
    ["message", "send", "jobs", '"\\u0000"'],
    ["message", "send", "jobs"],
    ["message", "send", "jobs", "{}", "--delay", "-1"],
    ["message", "send", "jobs", "{}", "--delay", "abc"],
    ["message", "send", "jobs", "{}", "--delay", "inf"],
    ["message", "send", "jobs", "{}", "--delay", "1000w"],
    ["message", "send", "jobs", "{}", "--priority", "1.5"],
    ["message", "send", "jobs", "{}", "--priority", "high"],
    ["message", "send", "jobs", "{}", "--priority", str(2**40)],
    ["message", "send", "jobs", "{}", "--dedupe-key", ""],
    ["message", "send", "jobs", "{}", "--dedupe-key", "k" * 300],
    ["message", "send", "jobs", "{}", "--dedupe-key", "taken"],  # held by an active message
    ["message", "send", "jobs", "{}", "--file", "-"],
    ["message", "send", "jobs", "--file", "-", "--dedupe-key", "k"],
    ["message", "send", "jobs", "--file", "/no/such/file.jsonl"],
    ["message", "send", "jobs", "--file", str(ROOT)],
    ["message", "send", "jobs", "--file", "-", "--batch-size", "0"],
    ["message", "send", "jobs", "--file", "-", "--batch-size", "20000"],
    ["message", "send", "nope", "--file", "-"],
    ["message", "read", "jobs", "--count", "0"],
    ["message", "read", "jobs", "--count", "-3"],
    ["message", "read", "jobs", "--count", "many"],
    ["message", "read", "jobs", "--count", "20000"],
    ["message", "read", "jobs", "--lock-time", "0"],
    ["message", "read", "jobs", "--lock-time", "-1"],
    ["message", "read", "jobs", "--archive", "--lock-time", "5"],
    ["message", "delete", "jobs", "999999999"],
    ["message", "delete", "jobs", "-1"],
    ["message", "delete", "jobs", "0"],
    ["message", "delete", "jobs", "abc"],
    ["message", "delete", "jobs", "1.5"],
    ["message", "delete", "jobs"],
    ["message", "show", "jobs", "999999999"],
    ["message", "show", "jobs", "999999999", "--archive"],
    ["message", "show", "jobs", "x"],
    ["message", "show", "jobs"],
    ["message", "replay", "jobs", "999999999"],
    ["message", "replay", "jobs", "{succeeded}"],  # only dead or failed can be replayed
    ["message", "replay", "jobs", "-2"],
    ["archive", "list", "jobs", "--limit", "0"],
    ["archive", "list", "jobs", "--limit", "-1"],
    ["archive", "list", "jobs", "--limit", "20000"],
    ["archive", "list", "jobs", "--offset", "-1"],
    ["archive", "list", "jobs", "--offset", "x"],
    ["archive", "purge", "jobs", "--older-than", "-1d"],
    ["archive", "purge", "jobs", "--older-than", "yesterday"],
    ["archive", "purge", "jobs", "--older-than", "7 days"],
    ["archive", "purge", "jobs", "--older-than", "1h30"],
    ["worker", "show", "nobody"],
    ["worker", "show", "999999999"],
    ["worker", "show", ""],
    ["worker", "show", "w" * 10_000],
    ["worker", "show", "w1'; DROP TABLE pgqrs_worker; --"],
    ["worker", "show", "w\x001"],  # only in-process: an OS argv cannot hold NUL
    ["worker", "suspend", "nobody"],
    ["worker", "suspend", "stopped-1"],  # a stopped worker cannot be steered
    ["worker", "resume", "nobody"],
    ["worker", "shutdown", "nobody"],
    ["worker", "shutdown"],
    ["worker", "reclaim", "--timeout", "-5"],
    ["worker", "reclaim", "--timeout", "x"],
    ["worker", "purge", "--older-than", "-1"],
    ["worker", "purge", "--older-than", "later"],
    ["worker", "health", "--timeout", "-1"],
    ["uninstall"],  # no terminal and no --yes
    ["install", "extra"],
    ["verify", "--verbosity", "9"],  # Django's flags after a subcommand are checked too
    ["queue", "list", "-v", "x"],
    ["queue", "list", "--no-color", "--force-color"],
    ["stats", "--bogus"],
    ["queue", "list", "--format", "xml"],
    ["queue", "list", "--database", "nope"],
    ["queue", "list", "--database", "sqlite"],
    ["queue", "list", "--out", "/no/such/dir/out.json"],
    ["queue", "list", "--out", str(ROOT)],
    ["queue", "list", "--out", "out\x00.json"],
    ["message", "send", "jobs", "--file", "in\x00.jsonl"],
    ["queue", "list", "--log-level", "loud"],
    ["queue"],
    ["queue", "bogus"],
    ["bogus"],
    [],
    ["--format"],
    ["queue", "list", "--form", "json"],  # no abbreviations
]
FILE_CASES = {
    "invalid-json-line": b'{"n": 1}\n{"n": 2\n',
    "invalid-utf8": b'{"n": 1}\n{"n": "\xff"}\n',
    "too-deep-line": b'{"n": 1}\n' + b"[" * 40 + b"]" * 40 + b"\n",
    "nan-line": b'{"n": 1}\nNaN\n',
}


def cases() -> list[object]:
    return list(_cases())


def _cases() -> Iterator[object]:
    for template in QUEUE_COMMANDS:
        names = BAD_NAMES if template[1] == "create" else [*BAD_NAMES, "nope"]
        for number, name in enumerate(names):
            args = [name if part == "{q}" else part for part in template]
            yield pytest.param(
                args, id=f"{'-'.join(template[:2])}-{template.index('{q}')}-{number}"
            )
    for args in OTHER_CASES:
        yield pytest.param(args, id=" ".join(a[:20] for a in args) or "no-args")
    for path, parser in leaf_parsers().items():
        if any(a.required and not a.option_strings for a in parser._actions):
            yield pytest.param(list(path), id=f"missing-args-{'-'.join(path)}")


@pytest.fixture
def state(admin: PgqrsAdmin, queue: Queue) -> dict[str, int]:
    """Something in every table, so "nothing changed" means something."""
    admin.create_queue("dead")
    worker = admin.register_worker(["jobs"], name="w1")
    stopped = admin.register_worker(["jobs"], name="stopped-1")
    admin.stop_worker(stopped)
    producer = Producer("jobs")
    producer.batch_enqueue([{"n": i} for i in range(5)])
    producer.enqueue({"n": "keyed"}, dedupe_key="taken")
    consumer = Consumer("jobs", worker)
    done = consumer.dequeue()
    consumer.archive(done, result={"ok": True})
    consumer.dequeue()
    return {"succeeded": done.id}


@pytest.mark.django_db
@pytest.mark.parametrize("args", cases())
def test_bad_input_exits_2_with_one_line_and_changes_nothing(
    args: list[str], state: dict[str, int]
) -> None:
    args = [a.format(**state) if a.startswith("{s") else a for a in args]
    before = snapshot()
    result = run_cli(*args)
    assert result.code == 2, result
    assert len(result.err_lines) == 1, result.err
    assert result.err.startswith("pgqrs: error: ") and "Traceback" not in result.err
    assert len(result.err) < 700
    assert result.out == ""
    assert snapshot() == before


@pytest.mark.django_db
@pytest.mark.parametrize("content", FILE_CASES.values(), ids=FILE_CASES.keys())
def test_bad_files_exit_2_and_enqueue_nothing(
    content: bytes, state: dict[str, int], tmp_path: Path
) -> None:
    path = tmp_path / "payloads.jsonl"
    path.write_bytes(b'{"first": true}\n' * 2500 + content)  # bad line after full batches
    before = snapshot()
    result = run_cli("message", "send", "jobs", "--file", path)
    assert result.code == 2 and len(result.err_lines) == 1, result
    assert result.err.startswith("pgqrs: error: line 250")
    assert snapshot() == before


def test_the_error_cases_cover_every_subcommand_that_takes_input() -> None:
    covered = {tuple(c.values[0][:2]) for c in cases() if c.values[0]}  # type: ignore[attr-defined]
    covered |= {tuple(c.values[0][:1]) for c in cases() if c.values[0]}  # type: ignore[attr-defined]
    takes_input = {
        path
        for path, parser in leaf_parsers().items()
        if {a.dest for a in parser._actions} - {"help", "format", "out", "log_level", "database"}
    }
    assert takes_input - covered == set()


# -- a database that is down ------------------------------------------------------------------
# Each subcommand runs in this process with `--database` at a dead server, so what is timed is
# the command's own handling (the connect timeout it sets), not the start of a Python process:
# the limit holds on a loaded machine. One real process per kind of failure shows that the
# same line and exit code reach a shell, and that the timeout applies in a fresh process too.

#: Seconds a command may take to give up: the 3-second connect timeout, with ample room.
LIMIT = 10


def closed_port() -> int:
    """A local TCP port where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def assert_fails_fast(alias: str, path: tuple[str, ...], args: list[str]) -> str:
    """``pgqrs path args --database alias`` exits 1 with one line, within LIMIT seconds."""
    started = time.monotonic()
    result = run_cli(*path, *args, "--database", alias, stdin='{"n": 1}\n')
    elapsed = time.monotonic() - started
    assert result.code == 1, result
    (line,) = result.err_lines
    assert line.startswith("pgqrs: error: ") and f"database {alias!r}" in line, line
    assert elapsed < LIMIT, f"took {elapsed:.1f}s"
    return line


def assert_process_fails(proc: subprocess.CompletedProcess[str]) -> str:
    """A real ``manage.py pgqrs`` ended with exit code 1 and one line, no traceback."""
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("pgqrs: error: "), proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    return lines[0]


@pytest.fixture
def dead_servers(monkeypatch: pytest.MonkeyPatch, django_db_blocker: Any) -> Iterator[None]:
    """Database access for a test that only connects to dead servers (no test transaction,
    which would refuse an alias made during the test), without PGCONNECT_TIMEOUT: the CLI
    sets its own connect timeout only when that variable does not."""
    monkeypatch.delenv("PGCONNECT_TIMEOUT", raising=False)
    with django_db_blocker.unblock():
        yield


@pytest.fixture
def refused(dead_servers: None) -> Iterator[str]:
    """An alias whose server refuses connections (nothing listens on its port)."""
    url = f"postgresql://postgres@127.0.0.1:{closed_port()}/postgres"
    with database_alias("refused", url) as alias:
        yield alias


@pytest.mark.parametrize("path", EVERY_SUBCOMMAND, ids=" ".join)
def test_every_subcommand_exits_1_fast_when_the_database_refuses(
    path: tuple[str, ...], refused: str
) -> None:
    line = assert_fails_fast(refused, path, EVERY_SUBCOMMAND[path])
    assert "Connection refused" in line or "connect" in line


def test_every_subcommand_has_a_database_down_case() -> None:
    assert set(EVERY_SUBCOMMAND) == set(leaf_parsers())


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A server that accepts TCP connections and never answers (a hung or firewalled
    database): only a connect timeout gets a client out."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(sock.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"postgresql://postgres@127.0.0.1:{sock.getsockname()[1]}/postgres"
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    sock.close()


@pytest.mark.slow
@pytest.mark.parametrize(
    "path", [("queue", "list"), ("message", "send"), ("verify",)], ids=" ".join
)
def test_a_database_that_never_answers_fails_within_10_seconds(
    silent_server: str, dead_servers: None, path: tuple[str, ...]
) -> None:
    args = ["jobs", "--file", "-"] if path == ("message", "send") else EVERY_SUBCOMMAND[path]
    with database_alias("silent", silent_server) as alias:
        line = assert_fails_fast(alias, path, args)
    assert "timeout" in line


@pytest.mark.slow
def test_a_real_process_reports_a_refused_database_in_one_line() -> None:
    url = f"postgresql://postgres@127.0.0.1:{closed_port()}/postgres"
    line = assert_process_fails(subprocess_cli("queue", "list", env=cli_env(url)))
    assert line.startswith(f"pgqrs: error: cannot use database {conf.database()!r}: ")
    assert "Connection refused" in line or "connect" in line


@pytest.mark.slow
def test_a_real_process_gives_up_on_a_database_that_never_answers(silent_server: str) -> None:
    """The default connect timeout applies in a fresh process whose settings have none (the
    subprocess timeout is the bound: without the connect timeout the command never ends)."""
    proc = subprocess_cli(
        "message", "send", "jobs", "--file", "-", env=cli_env(silent_server), stdin="{}\n"
    )
    assert "timeout" in assert_process_fails(proc)


@pytest.mark.slow
def test_a_stopped_embedded_server_fails_fast(dead_servers: None) -> None:
    """Start an embedded PostgreSQL in a child process that stops (and removes) it on exit,
    then point the CLI at it."""
    code = "from pgqrs_django import embedded; print(embedded.start_temporary())"
    started = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    url = started.stdout.strip().splitlines()[-1]
    assert url.startswith("postgresql://")
    with database_alias("stopped", url) as alias:
        for path in [("queue", "list"), ("message", "send"), ("worker", "health")]:
            assert_fails_fast(alias, path, EVERY_SUBCOMMAND[path])
