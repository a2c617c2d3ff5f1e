"""Settings: where each value comes from (settings.PGQRS, then PGQRS_* variables, then the
defaults), the cache and when it is cleared, and bad values named with their key or variable,
in the API, the system checks and the commands."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.core.checks import run_checks
from django.core.signals import setting_changed
from django.test.utils import override_settings

from pgqrs_django import conf
from pgqrs_django.exceptions import InvalidInput, InvalidSetting
from pgqrs_django.models import Queue

ROOT = Path(__file__).resolve().parent.parent
EnvSetter = Callable[..., None]


@pytest.fixture
def pgqrs_environ(monkeypatch: pytest.MonkeyPatch) -> Iterator[EnvSetter]:
    """Set ``PGQRS_*`` variables in this process and clear conf's cache (it reads the
    environment when it fills); cleared again once they are gone."""

    def setenv(**variables: str) -> None:
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        conf.clear_cache()

    yield setenv
    monkeypatch.undo()
    conf.clear_cache()


def test_settings_are_read_at_use_time() -> None:
    assert conf.get("DEFAULT_BATCH_SIZE") == 100
    with override_settings(PGQRS={"DEFAULT_BATCH_SIZE": 7}):
        assert conf.get("DEFAULT_BATCH_SIZE") == 7
    assert conf.get("DEFAULT_BATCH_SIZE") == 100


def test_a_variable_replaces_the_default_and_a_pgqrs_key_beats_the_variable(
    pgqrs_environ: EnvSetter,
) -> None:
    pgqrs_environ(
        PGQRS_DEFAULT_LOCK_TIME="12.5",
        PGQRS_DEFAULT_BATCH_SIZE=" 33 ",
        PGQRS_RATE_LIMIT="none",
        PGQRS_MAX_DELAY="1e3",
    )
    assert conf.get("DEFAULT_LOCK_TIME") == 12.5
    assert conf.get("DEFAULT_BATCH_SIZE") == 33
    assert conf.get("RATE_LIMIT") is None
    assert conf.get("MAX_DELAY") == 1000.0
    # The defect this fixes: the variable used to beat override_settings.
    with override_settings(PGQRS={"DEFAULT_LOCK_TIME": 1, "RATE_LIMIT": 5}):
        assert conf.get("DEFAULT_LOCK_TIME") == 1.0
        assert conf.get("RATE_LIMIT") == 5.0
        assert conf.get("DEFAULT_BATCH_SIZE") == 33  # not in the dict: the variable's
    assert conf.get("DEFAULT_LOCK_TIME") == 12.5
    pgqrs_environ(PGQRS_RATE_LIMIT="20")
    assert conf.get("RATE_LIMIT") == 20.0


@pytest.mark.django_db
def test_a_new_queue_takes_its_defaults_from_the_variables(pgqrs_environ: EnvSetter) -> None:
    pgqrs_environ(PGQRS_DEFAULT_LOCK_TIME="30", PGQRS_MAX_ATTEMPTS="2")
    queue = Queue.objects.create(name="from-env")
    queue.refresh_from_db()
    assert (queue.visibility_timeout, queue.max_attempts) == (30.0, 2)


def test_the_cache_is_cleared_when_pgqrs_changes_and_only_then(pgqrs_environ: EnvSetter) -> None:
    first = conf.resolve()
    assert conf.resolve() is first
    setting_changed.send(sender=None, setting="TIME_ZONE", value="UTC", enter=True)
    assert conf.resolve() is first
    with override_settings(PGQRS={"POLL_INTERVAL": 0.25}):
        inside = conf.resolve()
        assert inside is not first and conf.get("POLL_INTERVAL") == 0.25
    assert conf.resolve() is not inside and conf.get("POLL_INTERVAL") == 1.0
    # The environment is read when the cache fills: a change needs clear_cache().
    cached = conf.resolve()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PGQRS_POLL_INTERVAL", "3")
        assert conf.get("POLL_INTERVAL") == 1.0 and conf.resolve() is cached
        conf.clear_cache()
        assert conf.get("POLL_INTERVAL") == 3.0
    conf.clear_cache()
    assert conf.get("POLL_INTERVAL") == 1.0


LONG = "9" * 200 + "x"


@pytest.mark.parametrize(
    ("given", "error"),
    [
        (
            {"DEFAULT_LOCK_TIME": "abc"},
            "PGQRS['DEFAULT_LOCK_TIME'] must be a number > 0, not 'abc'",
        ),
        ({"DEFAULT_LOCK_TIME": 0}, "PGQRS['DEFAULT_LOCK_TIME'] must be a number > 0, not 0"),
        (
            {"DEFAULT_BATCH_SIZE": 2.5},
            "PGQRS['DEFAULT_BATCH_SIZE'] must be a whole number > 0, not 2.5",
        ),
        ({"POLL_INTERVAL": True}, "PGQRS['POLL_INTERVAL'] must be a number > 0, not True"),
        (
            {"RATE_LIMIT": float("inf")},
            "PGQRS['RATE_LIMIT'] must be a number > 0, or None, not inf",
        ),
        ({"RETRY_JITTER": 2}, "PGQRS['RETRY_JITTER'] must be a number from 0 to 1, not 2"),
        (
            {"DATABASE": ""},
            "PGQRS['DATABASE'] must be a database alias (a non-empty string), not ''",
        ),
    ],
)
def test_a_bad_setting_names_its_key_and_value(given: dict[str, object], error: str) -> None:
    [key] = given
    with override_settings(PGQRS=given):
        with pytest.raises(InvalidSetting) as raised:
            conf.get(key)
        assert str(raised.value) == error
        assert conf.problems() == [error]
        assert [m.msg for m in run_checks(tags=["pgqrs"]) if m.id == "pgqrs.E003"] == [f"{error}."]
        # The other keys keep working.
        assert conf.get("MAX_ATTEMPTS") == 5


@pytest.mark.parametrize(
    ("variable", "text", "expected"),
    [
        ("PGQRS_DEFAULT_LOCK_TIME", "abc", "a number > 0"),
        ("PGQRS_DEFAULT_LOCK_TIME", "-1", "a number > 0"),
        ("PGQRS_DEFAULT_BATCH_SIZE", "2.5", "a whole number > 0"),
        ("PGQRS_RATE_LIMIT", "nan", "a number > 0, or None"),
        ("PGQRS_RETRY_JITTER", "1.5", "a number from 0 to 1"),
        ("PGQRS_DATABASE", " ", "a database alias (a non-empty string)"),
        ("PGQRS_MAX_ATTEMPTS", LONG, "a whole number > 0"),
    ],
)
def test_a_bad_variable_names_itself_and_its_value(
    pgqrs_environ: EnvSetter, variable: str, text: str, expected: str
) -> None:
    pgqrs_environ(**{variable: text})
    shown = repr(text) if len(repr(text)) <= 100 else repr(text)[:97] + "..."
    error = f"environment variable {variable} must be {expected}, not {shown}"
    # Without PGQRS keys (make test-queue-db sets DATABASE), so every variable counts.
    with override_settings(PGQRS={}):
        with pytest.raises(InvalidSetting) as raised:
            conf.get(variable.removeprefix("PGQRS_"))
        assert str(raised.value) == error and len(error) < 200
        # Django's ImproperlyConfigured, and an input error for the commands.
        assert isinstance(raised.value, InvalidInput)
        checked = [m.msg for m in run_checks(tags=["pgqrs"]) if m.id == "pgqrs.E003"]
        assert checked == [f"{error}."]


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "django", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
@pytest.mark.django_db
def test_a_bad_variable_is_one_line_and_exit_code_2_in_the_commands(
    subprocess_env: dict[str, str],
) -> None:
    env = dict(subprocess_env, PGQRS_DEFAULT_LOCK_TIME="abc", PGQRS_POLL_INTERVAL="soon")
    cli = _run("pgqrs", "queue", "create", "never", env=env)
    assert (cli.returncode, cli.stdout) == (2, "")
    assert cli.stderr == (
        "pgqrs: error: environment variable PGQRS_DEFAULT_LOCK_TIME must be a number > 0, "
        "not 'abc'\n"
    )
    worker = _run("pgqrs_worker", "--queue", "never", "--burst", "--skip-checks", env=env)
    assert worker.returncode == 2, worker.stderr
    assert worker.stderr.splitlines() == [
        "pgqrs_worker: error: environment variable PGQRS_POLL_INTERVAL must be a number > 0, "
        "not 'soon'"
    ]
    check = _run("check", "--tag", "pgqrs", env=env)
    assert check.returncode == 1
    assert "(pgqrs.E003) environment variable PGQRS_POLL_INTERVAL" in check.stderr
    assert not Queue.objects.filter(name="never").exists()
