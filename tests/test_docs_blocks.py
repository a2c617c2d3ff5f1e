"""Every fenced block of README.md and docs/ that is not Python is checked too.

tests/test_docs.py runs the ```python blocks and tests/test_cli_docs.py the ```console
examples of docs/cli.md. This module covers the rest, by language:

- ``sh``: each command line is run or checked against the real thing: ``manage.py pgqrs``
  lines run in order (one database per page) and must exit 0; ``manage.py`` lines of other
  commands parse with that command's own parser; ``make`` targets exist in the Makefile;
  ``python -m`` modules exist and accept their flags; ``pip install`` names this package.
- ``ini`` (systemd units), ``dockerfile`` and ``yaml`` (compose): the worker command line
  they start parses with ``pgqrs_worker``'s parser.
- ``sql``: the statement shown is the one in ``pgqrs_django.sql``.
- ``text``: diagrams and sample output, not code. A block without a language fails, so
  every new block is classified.
"""

from __future__ import annotations

import configparser
import importlib.util
import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from django.core.management import load_command_class
from django.core.management.base import BaseCommand

from pgqrs_django import sql
from tests.cli_support import ROOT, run_cli

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]
FENCE = re.compile(r"^```(\S*)\n(.*?)^```", re.S | re.M)
CHECKED_ELSEWHERE = {"python", "console"}
LANGUAGES = {"sh", "ini", "dockerfile", "yaml", "sql", "text"}
#: Commands of the host system that docs show but a test cannot run here.
EXTERNAL = {"systemctl", "docker", "kubectl", "pgbouncer"}


def blocks(page: Path) -> list[tuple[str, str]]:
    return FENCE.findall(page.read_text())


def pages_with(language: str) -> list[Path]:
    return [page for page in PAGES if any(lang == language for lang, _ in blocks(page))]


def ids(page: Path) -> str:
    return str(page.relative_to(ROOT))


def command_lines(text: str) -> list[list[str]]:
    """The commands of a shell block: comments dropped, a leading ``$ `` removed."""
    found = []
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if words and words[0] == "$":
            words = words[1:]
        if words:
            found.append(words)
    return found


def django_command(name: str) -> BaseCommand:
    from django.core.management import get_commands

    return load_command_class(get_commands()[name], name)


def parse_manage_py(words: list[str]) -> None:
    """``manage.py NAME ARGS``: ARGS must parse with NAME's own parser (flags, types, ranges)."""
    name, args = words[0], words[1:]
    parser = django_command(name).create_parser("manage.py", name)
    try:
        parser.parse_args(args)
    except SystemExit as exc:  # argparse reports bad arguments by exiting
        raise AssertionError(f"`manage.py {shlex.join(words)}` does not parse") from exc


def manage_py_words(words: list[str]) -> list[str] | None:
    """The words after ``manage.py`` in a command line, or None if it does not run manage.py."""
    for index, word in enumerate(words):
        if word.endswith("manage.py"):
            return words[index + 1 :]
    return None


def makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w-]*):", text, re.M))


def test_every_block_declares_a_known_language() -> None:
    for page in PAGES:
        for language, body in blocks(page):
            assert language, f"{ids(page)}: a ``` block without a language:\n{body}"
            assert language in LANGUAGES | CHECKED_ELSEWHERE, (
                f"{ids(page)}: no test checks ```{language} blocks"
            )


def test_console_examples_live_in_the_cli_page() -> None:
    # tests/test_cli_docs.py runs the console examples of docs/cli.md, and only those.
    assert pages_with("console") == [ROOT / "docs" / "cli.md"]


def declared_extras() -> set[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return set(pyproject["project"]["optional-dependencies"])


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("page", pages_with("sh"), ids=ids)
def test_shell_blocks(page: Path) -> None:
    targets = makefile_targets()
    project = re.search(r'^name = "(.+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert project
    for _, body in (b for b in blocks(page) if b[0] == "sh"):
        for words in command_lines(body):
            manage = manage_py_words(words)
            if manage is not None and manage[:1] == ["pgqrs"]:
                result = run_cli(*manage[1:])
                assert result.code == 0, f"`{shlex.join(words)}` exited {result.code}: {result.err}"
            elif manage is not None:
                parse_manage_py(manage)
            elif words[0] == "make":
                missing = set(words[1:]) - targets
                assert not missing, f"`{shlex.join(words)}`: no Makefile target {missing}"
            elif words[:2] == ["pip", "install"]:
                # The package, with extras it declares: pgqrs-django[binary].
                name, _, extras = words[2].partition("[")
                assert len(words) == 3 and name == project.group(1), shlex.join(words)
                assert set(filter(None, extras.rstrip("]").split(","))) <= declared_extras()
            elif words[:2] == ["python", "-m"]:
                module = words[2]
                assert importlib.util.find_spec(module), f"no module {module}"
                help_run = subprocess.run(
                    [sys.executable, "-m", module, *words[3:], "--help"],
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                assert help_run.returncode == 0, f"`{shlex.join(words)}`: {help_run.stderr}"
            else:
                assert words[0] in EXTERNAL, f"{ids(page)}: no check for `{shlex.join(words)}`"


def worker_words(command: list[str]) -> list[str]:
    manage = manage_py_words(command)
    assert manage and manage[0] == "pgqrs_worker", f"not a worker command: {command}"
    return manage


@pytest.mark.parametrize("page", pages_with("ini"), ids=ids)
def test_systemd_units_start_a_valid_worker(page: Path) -> None:
    for _, body in (b for b in blocks(page) if b[0] == "ini"):
        unit = configparser.ConfigParser(interpolation=None, strict=False)
        unit.optionxform = str  # type: ignore[assignment,method-assign]
        unit.read_string(body)
        exec_start = unit["Service"]["ExecStart"].replace("%i", "emails")
        parse_manage_py(worker_words(shlex.split(exec_start)))
        assert unit["Service"]["KillSignal"] == "SIGTERM"


@pytest.mark.parametrize("page", pages_with("dockerfile"), ids=ids)
def test_container_images_start_a_valid_worker(page: Path) -> None:
    for _, body in (b for b in blocks(page) if b[0] == "dockerfile"):
        cmd = re.search(r"^CMD (\[.*\])$", body, re.M)
        assert cmd, "exec-form CMD expected: the worker must be PID 1 to receive SIGTERM"
        parse_manage_py(worker_words(json.loads(cmd.group(1))))


@pytest.mark.parametrize("page", pages_with("yaml"), ids=ids)
def test_compose_files_start_a_valid_worker(page: Path) -> None:
    for _, body in (b for b in blocks(page) if b[0] == "yaml"):
        services = yaml.safe_load(body)["services"]
        for service in services.values():
            parse_manage_py(worker_words(shlex.split(service["command"])))


def normalise(statement: str) -> str:
    return " ".join(statement.split())


@pytest.mark.parametrize("page", pages_with("sql"), ids=ids)
def test_sql_shown_is_the_sql_run(page: Path) -> None:
    statements = {
        name: normalise(value)
        for name, value in vars(sql).items()
        if name.isupper() and isinstance(value, str)
    }
    for _, body in (b for b in blocks(page) if b[0] == "sql"):
        shown = normalise(body)
        # A block may elide the end of a long RETURNING list with "...".
        prefix = shown.removesuffix("...").rstrip()
        matches = [name for name, value in statements.items() if value.startswith(prefix)]
        assert matches, f"{ids(page)}: this SQL is not in pgqrs_django.sql:\n{body}"
