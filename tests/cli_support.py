"""Helpers for the ``manage.py pgqrs`` tests: running the command in-process the way
``manage.py`` does, through ``call_command``, or in a subprocess; and a snapshot of every pgqrs
table to prove that bad input changes nothing."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import environ
from django.core.management import call_command
from django.db import connections, transaction

from pgqrs_django import conf
from pgqrs_django.management.commands.pgqrs import Command
from pgqrs_django.models import Archive, Message, Queue, Worker

ROOT = Path(__file__).resolve().parent.parent
#: A table cell: text without two spaces in a row.
CELL = re.compile(r"\S+(?: \S+)*")


@dataclasses.dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return json.loads(self.out)

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()


def run_cli(*args: object, stdin: str = "", command: type[Command] = Command) -> Result:
    """Run ``manage.py pgqrs *args`` in this process, as ``manage.py`` would (the command's
    ``main``, which ``run_from_argv`` calls), and return its exit code and output. SystemExit
    is not expected: ``main`` returns the code. ``command`` may be a subclass of the
    command, to see how it reports what a subcommand raised."""
    out, err = io.StringIO(), io.StringIO()
    package = logging.getLogger("pgqrs_django")
    level, handlers = package.level, list(package.handlers)
    saved_stdin = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin.encode()), encoding="utf-8")
    try:
        # --help and --version print through argparse, on sys.stdout.
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = command(stdout=out, stderr=err).main(["manage.py", "pgqrs", *map(str, args)])
    finally:
        sys.stdin = saved_stdin
        package.setLevel(level)
        package.handlers[:] = handlers
    return Result(code, out.getvalue(), err.getvalue())


def run_in_savepoint(*args: object, stdin: str = "", command: type[Command] = Command) -> Result:
    """``run_cli`` inside savepoints that are rolled back afterwards: whatever the command did,
    or a database error it met, stays out of the test's transactions (outside tests the
    command runs in autocommit mode). One on pgqrs's alias and one on ``default``, which
    ``--database default`` reaches under ``make test-queue-db``."""
    with contextlib.ExitStack() as stack:
        for alias in {conf.database(), "default"}:
            stack.enter_context(transaction.atomic(using=alias))
            stack.callback(transaction.set_rollback, True, using=alias)
        return run_cli(*args, stdin=stdin, command=command)


def call(*args: object, **options: Any) -> str:
    """``call_command("pgqrs", *args)``; returns what it printed on stdout."""
    out = io.StringIO()
    options.setdefault("stderr", io.StringIO())
    call_command("pgqrs", *map(str, args), stdout=out, **options)
    return out.getvalue()


def call_json(*args: object, **options: Any) -> Any:
    return json.loads(call("--format", "json", *args, **options))


def subprocess_cli(
    *args: object, env: dict[str, str], stdin: str = "", timeout: float = 60, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """``python -m django pgqrs *args`` in a child process with ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "django", "pgqrs", *map(str, args)],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


def cli_env(database_url: str) -> dict[str, str]:
    """Environment for a child ``manage.py pgqrs`` against ``database_url``."""
    env = dict(os.environ)
    env["DATABASE_URL"] = database_url
    env["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("PGCONNECT_TIMEOUT", None)
    return env


@contextlib.contextmanager
def database_alias(alias: str, url: str | None = None, **changes: Any) -> Iterator[str]:
    """A database alias that exists for the block only, for ``--database alias``: a copy of
    pgqrs's alias with ``changes`` (``USER``...; ``OPTIONS`` are added to its own), or the
    server at ``url``. Its OPTIONS hold no ``connect_timeout`` unless ``changes`` give one."""
    settings_dict = copy.deepcopy(connections.settings[conf.database()])
    # OPTIONS may say where the server is (an embedded one's socket directory): kept.
    settings_dict["OPTIONS"].pop("connect_timeout", None)
    if url is not None:  # another server: its URL says all (OPTIONS included, if any)
        settings_dict.update({"OPTIONS": {}, **environ.Env.db_url_config(url)})
    settings_dict["OPTIONS"].update(changes.pop("OPTIONS", {}))
    settings_dict.update(changes)
    connections.settings[alias] = settings_dict
    try:
        yield alias
    finally:
        connections[alias].close()
        del connections[alias]
        del connections.settings[alias]


def snapshot() -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every pgqrs table, in a comparable form."""
    through = Worker.queues.through
    return {
        "queue": sorted(Queue.objects.values_list()),
        "worker": sorted(Worker.objects.values_list()),
        "worker_queues": sorted(through.objects.values_list()),
        "message": sorted(
            (*row[:2], json.dumps(row[2], sort_keys=True), *row[3:])
            for row in Message.objects.values_list()
        ),
        "archive": sorted(
            tuple(json.dumps(v, sort_keys=True) if isinstance(v, dict | list) else v for v in row)
            for row in Archive.objects.values_list()
        ),
    }


def assert_table(text: str, headers: list[str]) -> list[list[str]]:
    """``text`` is a table with ``headers``, aligned: in every column the cells of all lines
    share their left edge (left-aligned) or their right edge (right-aligned). Cells are
    separated by two or more spaces. Returns the data rows as lists of cells."""
    lines = text.rstrip("\n").splitlines()
    spans = [[(m.start(), m.end(), m.group()) for m in CELL.finditer(line)] for line in lines]
    assert [cell for _, _, cell in spans[0]] == headers, lines[0]
    for number, row in enumerate(spans):
        assert len(row) == len(headers), f"line {number} has {len(row)} cells: {lines[number]!r}"
    for column in range(len(headers)):
        lefts = {row[column][0] for row in spans}
        rights = {row[column][1] for row in spans}
        assert len(lefts) == 1 or len(rights) == 1, f"column {headers[column]} is not aligned"
    return [[cell for _, _, cell in row] for row in spans[1:]]


def assert_record(text: str, keys: list[str]) -> dict[str, str]:
    """``text`` is ``key  value`` lines with the values aligned; returns them as a dict."""
    lines = text.rstrip("\n").splitlines()
    assert [line.split(" ", 1)[0] for line in lines] == keys, text
    width = max(len(k) for k in keys) + 2
    values = {}
    for line, key in zip(lines, keys, strict=True):
        assert line[:width].rstrip() == key and (len(line) == len(key) or line[width - 1] == " ")
        values[key] = line[width:]
    return values


def leaf_parsers() -> dict[tuple[str, ...], Any]:
    """Every subcommand's parser by its path, e.g. ``("queue", "create")``."""
    import argparse

    found: dict[tuple[str, ...], Any] = {}

    def walk(parser: Any, path: tuple[str, ...]) -> None:
        subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subparsers:
            found[path] = parser
        for action in subparsers:
            for name, child in action.choices.items():
                walk(child, (*path, name))

    walk(Command().create_parser("manage.py", "pgqrs"), ())
    return found


#: A valid invocation of every subcommand (the database-down tests run each one).
EVERY_SUBCOMMAND: dict[tuple[str, ...], list[str]] = {
    ("install",): [],
    ("uninstall",): ["--yes"],
    ("verify",): [],
    ("queue", "create"): ["jobs2", "--max-attempts", "3"],
    ("queue", "list"): [],
    ("queue", "get"): ["jobs"],
    ("queue", "delete"): ["jobs"],
    ("queue", "purge"): ["jobs"],
    ("queue", "metrics"): [],
    ("queue", "pause"): ["jobs"],
    ("queue", "resume"): ["jobs"],
    ("message", "send"): ["jobs", '{"n": 1}', "--delay", "5"],
    ("message", "read"): ["jobs", "--count", "2"],
    ("message", "dequeue"): ["jobs"],
    ("message", "delete"): ["jobs", "1"],
    ("message", "count"): ["jobs"],
    ("message", "show"): ["jobs", "1"],
    ("message", "replay"): ["jobs", "1"],
    ("archive", "list"): ["jobs"],
    ("archive", "purge"): ["jobs", "--older-than", "7d"],
    ("worker", "list"): [],
    ("worker", "show"): ["w1"],
    ("worker", "suspend"): ["w1"],
    ("worker", "resume"): ["w1"],
    ("worker", "shutdown"): ["w1"],
    ("worker", "reclaim"): [],
    ("worker", "purge"): [],
    ("worker", "health"): [],
    ("stats",): [],
}
