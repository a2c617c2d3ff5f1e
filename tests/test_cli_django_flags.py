"""Django's standard flags on ``manage.py pgqrs``, before or after a subcommand: each behaves
as it does for Django's own commands, which these tests run in the same situation
(``check`` for success, ``sqlmigrate`` for a CommandError, as in the issue's acceptance).

``--traceback`` and ``-v`` are handled by the command itself, so they run in this process.
``--settings`` is read by ``manage.py`` (ManagementUtility) before any command is loaded, so
it runs in real processes.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from typing import Any
from unittest import mock

import pytest
from django.core.management import CommandError, load_command_class
from django.db import connections

from pgqrs_django.management.commands.pgqrs import Command
from pgqrs_django.models import Queue
from tests.cli_support import ROOT, Result, run_cli

pytestmark = pytest.mark.django_db


def from_argv(app: str, name: str, *args: str) -> tuple[Result, BaseException | None]:
    """``manage.py name *args`` through the command's ``run_from_argv``, in this process, as
    ManagementUtility runs it: (exit code and output, the exception it let through).
    run_from_argv() ends by closing every connection, as a process about to exit may; here
    that would end the test's transaction, so it is skipped."""
    out, err = io.StringIO(), io.StringIO()
    code, raised = 0, None
    with (
        mock.patch.object(connections, "close_all"),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        command = load_command_class(app, name)  # its stdout and stderr: the ones above
        try:
            command.run_from_argv(["manage.py", name, *args])
        except SystemExit as exc:
            code = int(exc.code or 0)
        except Exception as exc:  # what Python would print as a traceback, exit code 1
            code, raised = 1, exc
    return Result(code, out.getvalue(), err.getvalue()), raised


def pgqrs(*args: str) -> tuple[Result, BaseException | None]:
    return from_argv("pgqrs_django", "pgqrs", *args)


def parsed(*args: str) -> Any:
    return Command().create_parser("manage.py", "pgqrs").parse_args(args)


def test_traceback_after_a_subcommand_is_accepted_as_by_check(queue: Queue) -> None:
    plain, _ = pgqrs("queue", "list")
    for args in (["queue", "list", "--traceback"], ["--traceback", "queue", "list"]):
        assert pgqrs(*args) == (plain, None)
    checked, raised = from_argv("django.core", "check", "--traceback")
    assert (checked.code, raised) == (0, None)


def test_traceback_raises_the_command_error_as_sqlmigrate_does(queue: Queue) -> None:
    theirs, their_error = from_argv("django.core", "sqlmigrate", "nosuchapp", "0001", "--traceback")
    assert type(their_error) is CommandError and theirs.err == ""
    for args in (["queue", "get", "nope", "--traceback"], ["--traceback", "queue", "get", "nope"]):
        ours, our_error = pgqrs(*args)
        assert type(our_error) is CommandError and ours.err == ""
        assert str(our_error) == "queue 'nope' does not exist"
    # Without it: one line on stderr and an exit code, no exception, for both.
    theirs, their_error = from_argv("django.core", "sqlmigrate", "nosuchapp", "0001")
    ours, our_error = pgqrs("queue", "get", "nope")
    assert their_error is None and len(theirs.err.splitlines()) == 1 and theirs.code == 1
    assert our_error is None and ours.err_lines == ["pgqrs: error: queue 'nope' does not exist"]
    assert ours.code == 2


def test_verbosity_before_or_after_a_subcommand_is_accepted_as_by_check(queue: Queue) -> None:
    plain = run_cli("queue", "list")
    for args in (["-v", "2", "queue", "list"], ["queue", "list", "-v", "2"]):
        assert run_cli(*args) == plain
        assert parsed(*args).verbosity == 2
    assert parsed("queue", "list").verbosity == 1  # Django's default
    assert parsed("-v", "3", "queue", "list", "--verbosity", "0").verbosity == 0  # last wins
    assert from_argv("django.core", "check", "-v", "2") == from_argv("django.core", "check")
    # A bad value is refused with Django's own message, in one line.
    theirs, _ = from_argv("django.core", "check", "-v", "9")
    reason = theirs.err.splitlines()[-1].split(" error: ", 1)[1]
    assert reason.startswith("argument -v/--verbosity: invalid choice: ")
    for args, where in (
        (["-v", "9", "queue", "list"], ""),
        (["queue", "list", "-v", "9"], "queue list: "),
    ):
        ours = run_cli(*args)
        assert ours.code == theirs.code == 2
        assert ours.err_lines == [f"pgqrs: error: {where}{reason} (see --help)"]


def test_pythonpath_and_colour_flags_after_a_subcommand(
    queue: Queue, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert run_cli("queue", "list", "--pythonpath", str(tmp_path), "--no-color").code == 0
    assert sys.path[0] == str(tmp_path)
    assert run_cli("queue", "list", "--force-color").code == 0
    both = run_cli("queue", "list", "--no-color", "--force-color")
    assert both.code == 2  # Django says 1; for pgqrs a usage error is 2, and 1 is the database
    assert both.err_lines == ["pgqrs: error: --no-color and --force-color cannot be used together"]


def manage_py(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "django", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_settings_after_a_subcommand_behaves_as_for_check(subprocess_env: dict[str, str]) -> None:
    """manage.py imports the settings named by --settings, wherever it stands, before it loads
    any command. A module that exists works after the subcommand; one that does not ends in
    Django's own traceback, for pgqrs exactly as for check (pgqrs is never loaded)."""
    ours = manage_py(
        "pgqrs",
        "queue",
        "list",
        "--format",
        "json",
        "--settings=tests.settings",
        env=subprocess_env,
    )
    assert (ours.returncode, ours.stderr, json.loads(ours.stdout)) == (0, "", [])
    ours = manage_py("pgqrs", "queue", "list", "--settings=does.not.exist", env=subprocess_env)
    theirs = manage_py("check", "--settings=does.not.exist", env=subprocess_env)
    assert ours.returncode == theirs.returncode == 1
    for proc in (ours, theirs):
        lines = proc.stderr.splitlines()
        assert lines[0] == "Traceback (most recent call last):", proc.stderr
        assert lines[-1] == "ModuleNotFoundError: No module named 'does'"
        assert proc.stdout == ""
