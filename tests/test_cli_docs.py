"""``--help`` describes every flag, docs/cli.md lists every subcommand and flag, and every
``console`` example of docs/cli.md runs and prints what the page shows."""

from __future__ import annotations

import argparse
import doctest
import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from pgqrs_django import Consumer, PgqrsAdmin, Producer, conf
from pgqrs_django.management.commands.pgqrs import Command
from tests.cli_support import ROOT, leaf_parsers, run_cli

DOC = ROOT / "docs" / "cli.md"
GLOBAL = {"--format", "--out", "--log-level", "--database"}
DJANGO = {
    "--version",
    "-v",
    "--verbosity",
    "--settings",
    "--pythonpath",
    "--traceback",
    "--no-color",
    "--force-color",
    "-h",
    "--help",
}


def all_parsers() -> dict[tuple[str, ...], Any]:
    """The top parser, each group's parser and each subcommand's parser, by path."""
    found: dict[tuple[str, ...], Any] = {}

    def walk(parser: Any, path: tuple[str, ...]) -> None:
        found[path] = parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    walk(child, (*path, name))

    walk(Command().create_parser("manage.py", "pgqrs"), ())
    return found


@pytest.mark.parametrize("path", all_parsers(), ids=lambda p: " ".join(p) or "pgqrs")
def test_help_describes_every_flag(path: tuple[str, ...]) -> None:
    parser = all_parsers()[path]
    result = run_cli(*path, "--help")
    assert result.code == 0 and result.err == ""
    text = " ".join(result.out.split())
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                assert choice.help, f"{choice.dest} has no help"
                assert choice.dest in text and " ".join(choice.help.split()) in text
            continue
        assert action.help and action.help != argparse.SUPPRESS, f"{action.dest} has no help"
        names = action.option_strings or [action.metavar or action.dest]
        for name in names:
            assert name in text, f"{name} missing from `pgqrs {' '.join(path)} --help`"
        first_words = " ".join(action.help.split()[:4])
        assert first_words.replace("%%", "%") in text, f"help of {names} not shown"


def sections() -> dict[str, str]:
    """docs/cli.md split at its ``### `pgqrs ...` `` headings, by command path."""
    parts = re.split(r"^### `pgqrs ([a-z ]+)`", DOC.read_text(), flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def test_docs_list_every_subcommand_and_its_flags() -> None:
    found = sections()
    leaves = leaf_parsers()
    assert set(found) == {" ".join(path) for path in leaves}
    for path, parser in leaves.items():
        section = found[" ".join(path)]
        for action in parser._actions:
            for option in action.option_strings:
                if option not in GLOBAL | DJANGO:
                    assert f"`{option}" in section, f"{option} of {path} is not documented"
            if not action.option_strings and action.metavar:
                assert action.metavar in section, f"{action.metavar} of {path} not documented"
        assert "```console" in section, f"`pgqrs {' '.join(path)}` has no example"
        assert f"$ python manage.py pgqrs {' '.join(path)}" in section
    head = DOC.read_text().split("### `pgqrs", 1)[0]
    for option in GLOBAL | DJANGO - {"-h", "-v"}:
        assert f"`{option}" in head, f"global flag {option} is not documented"


# -- running the examples ---------------------------------------------------------------------

STEP = re.compile(r"^```console\n(.*?)^```|<!-- setup: (.*?) -->", re.S | re.M)
PGQRS = ["python", "manage.py", "pgqrs"]


def printf(fmt: str) -> str:
    return fmt.encode().decode("unicode_escape")


def run_line(command: str) -> tuple[str, int]:
    """One ``$`` line: ``python manage.py pgqrs ...``, optionally fed by ``printf '...' |``,
    or ``printf '...' > FILE``, or ``cat FILE``. Returns its output (stdout, then stderr)
    and exit code."""
    words = shlex.split(command)
    stdin = ""
    if words[0] == "printf" and words[2] == ">":
        Path(words[3]).write_text(printf(words[1]))
        return "", 0
    if words[0] == "cat":
        return Path(words[1]).read_text(), 0
    if words[0] == "printf" and words[2] == "|":
        stdin, words = printf(words[1]), words[3:]
    assert words[:3] == PGQRS, f"unsupported example line: {command}"
    result = run_cli(*words[3:], stdin=stdin)
    return result.out + result.err, result.code


def examples() -> list[tuple[str, str, int, str]]:
    """(command, expected output, expected exit code, setup code) in page order."""
    steps: list[tuple[str, str, int, str]] = []
    for block, setup in STEP.findall(DOC.read_text()):
        if setup:
            steps.append(("", "", 0, setup))
            continue
        for chunk in re.split(r"^\$ ", block, flags=re.M)[1:]:
            command, _, want = chunk.partition("\n")
            code = 0
            exit_line = re.search(r"^\(exit (\d)\)\n\Z", want, re.M)
            if exit_line:
                code, want = int(exit_line.group(1)), want[: exit_line.start()]
            steps.append((command, want, code, ""))
    return steps


@pytest.mark.django_db(transaction=True)
def test_the_examples_in_docs_cli_run_as_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    checker = doctest.OutputChecker()
    namespace = {"Consumer": Consumer, "PgqrsAdmin": PgqrsAdmin, "Producer": Producer}
    ran = 0
    for command, want, code, setup in examples():
        if setup:
            exec(setup, namespace)
            continue
        got, exit_code = run_line(command)
        # Under `make test-queue-db` pgqrs uses the alias "queue"; the page shows the usual one.
        got = re.sub(rf"(database\W+){conf.database()}\b", r"\1default", got)
        assert exit_code == code, f"$ {command}\nexit {exit_code}\n{got}"
        assert checker.check_output(want, got, doctest.ELLIPSIS), (
            f"$ {command}\n--- docs/cli.md shows:\n{want}--- it printed:\n{got}"
        )
        ran += 1
    assert ran >= len(leaf_parsers())
