"""Every ```python block of README.md and docs/*.md runs, in order, against a fresh database.

A block that only assigns settings (``PGQRS = {...}``, ``DATABASES = {...}``) runs too, but
proves nothing by running: its names and keys are checked against the settings that pgqrs
and Django actually read.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import django
import pytest
from django.conf import settings
from django.core.checks import run_checks
from django.db.utils import ConnectionHandler
from django.test.utils import override_settings
from django.utils.module_loading import import_string

from pgqrs_django import conf

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
#: Marks a page whose examples assume the pgqrs tables on the default database.
ONE_DATABASE = "<!-- docs-test: one database -->"


def python_blocks(path: Path) -> list[str]:
    return BLOCK.findall(path.read_text())


def test_the_readme_has_its_usage_example() -> None:
    blocks = python_blocks(ROOT / "README.md")
    assert blocks, "README.md lost its usage example"
    lines = [line for line in blocks[0].splitlines() if line.strip()]
    assert len(lines) <= 10


# transaction=True: examples run as in an application, where commits happen (signals are
# sent on commit).
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "path", [p for p in DOCS if python_blocks(p)], ids=lambda p: str(p.relative_to(ROOT))
)
def test_code_examples_run(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if settings.QUEUE_DB is not None and ONE_DATABASE in path.read_text():
        # The page shows data and jobs in one transaction, which needs the pgqrs tables on
        # the data's database; `make test` runs it, and databases.md's blocks show the
        # two-database case.
        pytest.skip("the page's examples assume the pgqrs tables on the default database")
    # The blocks run as the module docs_<page>, importable while they run, as an
    # application's module is (the worker imports Django tasks by dotted path).
    module = types.ModuleType(f"docs_{path.stem}")
    sys.modules[module.__name__] = module
    try:
        for number, block in enumerate(python_blocks(path), 1):
            try:
                exec(compile(block, f"{path.name} block {number}", "exec"), module.__dict__)
            except Exception as exc:
                pytest.fail(f"{path.name} block {number} failed: {exc!r}\n{block}")
    finally:
        del sys.modules[module.__name__]


@pytest.mark.django_db
def test_readme_example_does_what_it_says(capsys: pytest.CaptureFixture[str]) -> None:
    from pgqrs_django.models import Archive, Message

    exec(compile(python_blocks(ROOT / "README.md")[0], "README.md", "exec"), {})
    assert capsys.readouterr().out == "sending to ada@example.com\n"
    row = Archive.objects.get()
    assert (row.outcome, row.result, row.priority) == ("succeeded", {"sent": True}, 5)
    assert not Message.objects.exists()


def settings_blocks() -> list[tuple[Path, int, str]]:
    """The blocks made only of ``UPPER_CASE = ...`` assignments: (page, number, code)."""
    found = []
    for path in DOCS:
        for number, block in enumerate(python_blocks(path), 1):
            body = ast.parse(block).body
            if body and all(
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id.isupper()
                for node in body
            ):
                found.append((path, number, block))
    return found


def check_pgqrs(value: dict[str, Any], shown: dict[str, Any]) -> None:
    assert set(value) <= set(conf.DEFAULTS), set(value) - set(conf.DEFAULTS)
    alias = value.get("DATABASE", "default")
    assert alias in {**settings.DATABASES, **shown.get("DATABASES", {})}, alias
    # The values pass pgqrs's own system checks (with the alias this suite has).
    with override_settings(PGQRS={**value, "DATABASE": "default"}):
        assert run_checks(tags=["pgqrs"]) == []


def check_databases(value: dict[str, Any], shown: dict[str, Any]) -> None:
    """Every key is one Django fills in for a connection or reads elsewhere in django.db."""
    configured = ConnectionHandler().configure_settings({"default": {}})["default"]
    django_db = Path(django.__file__).parent / "db"
    read_by_django = "".join(path.read_text() for path in django_db.glob("**/*.py"))
    for alias in value.values():
        importlib.import_module(f"{alias['ENGINE']}.base")
        unread = [key for key in set(alias) - set(configured) if f'"{key}"' not in read_by_django]
        assert not unread, f"Django reads no DATABASES key {unread}"


def check_routers(value: list[str], shown: dict[str, Any]) -> None:
    for path in value:
        import_string(path)


def check_installed_apps(value: list[str], shown: dict[str, Any]) -> None:
    # The suite itself runs with every app the page lists.
    assert set(value) <= set(settings.INSTALLED_APPS), set(value) - set(settings.INSTALLED_APPS)


def check_tasks(value: dict[str, Any], shown: dict[str, Any]) -> None:
    """Each backend is built as Django builds it (its own checks of QUEUES and OPTIONS run),
    and every key is one the Tasks framework reads."""
    framework = importlib.import_module(settings.TASKS_FRAMEWORK)
    base = importlib.import_module(f"{settings.TASKS_FRAMEWORK}.backends.base")
    read = inspect.getsource(framework) + inspect.getsource(base)
    for alias, params in value.items():
        unread = [key for key in params if f'"{key}"' not in read]
        assert not unread, f"the Tasks framework reads no TASKS key {unread}"
        backend = framework.TaskBackendHandler({alias: params})[alias]
        assert backend.alias == alias


SETTING_CHECKS: dict[str, Callable[[Any, dict[str, Any]], None]] = {
    "PGQRS": check_pgqrs,
    "DATABASES": check_databases,
    "DATABASE_ROUTERS": check_routers,
    "INSTALLED_APPS": check_installed_apps,
    "TASKS": check_tasks,
}


def test_the_pages_show_settings() -> None:
    assert {path.name for path, _, _ in settings_blocks()} >= {"settings.md", "databases.md"}


@pytest.mark.parametrize(
    ("path", "number", "block"),
    settings_blocks(),
    ids=[f"{p.relative_to(ROOT)} block {n}" for p, n, _ in settings_blocks()],
)
def test_settings_shown_are_settings_pgqrs_and_django_read(
    path: Path, number: int, block: str
) -> None:
    shown: dict[str, Any] = {}
    exec(compile(block, f"{path.name} block {number}", "exec"), {}, shown)
    for name, value in shown.items():
        assert name in SETTING_CHECKS, f"{path.name} block {number}: no check for {name}"
        SETTING_CHECKS[name](value, shown)
