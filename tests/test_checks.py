"""System checks and settings: each check ID fires when, and only when, it should."""

from __future__ import annotations

import pytest
from django.core.checks import run_checks
from django.test.utils import override_settings

from pgqrs_django import conf
from pgqrs_django.exceptions import InvalidSetting


def pgqrs_checks() -> list:
    # Only the checks tagged "pgqrs": other apps' checks may touch the sqlite alias.
    return run_checks(tags=["pgqrs"])


def pgqrs_ids() -> list[str]:
    return sorted(m.id for m in pgqrs_checks() if m.id)


def test_default_settings_pass() -> None:
    assert pgqrs_ids() == []


def test_e001_database_is_not_postgresql() -> None:
    with override_settings(PGQRS={"DATABASE": "sqlite"}):
        messages = [m for m in pgqrs_checks() if m.id == "pgqrs.E001"]
    assert len(messages) == 1 and "sqlite" in messages[0].msg


def test_e002_unknown_database_alias() -> None:
    with override_settings(PGQRS={"DATABASE": "nowhere"}):
        assert pgqrs_ids() == ["pgqrs.E002"]


@pytest.mark.parametrize(
    "bad",
    [
        {"DEFAULT_LOCK_TIME": 0},
        {"DEFAULT_LOCK_TIME": "5"},
        {"DEFAULT_BATCH_SIZE": 2.5},
        {"MAX_ATTEMPTS": -1},
        {"POLL_INTERVAL": True},
        {"RATE_LIMIT": 0},
        {"RETRY_JITTER": 2},
        {"DATABASE": 5},
    ],
)
def test_e003_invalid_values(bad: dict[str, object]) -> None:
    with override_settings(PGQRS=bad):
        assert "pgqrs.E003" in pgqrs_ids()


def test_e004_pgqrs_not_a_dict() -> None:
    with override_settings(PGQRS=["DATABASE"]):
        assert pgqrs_ids() == ["pgqrs.E004"]
        with pytest.raises(InvalidSetting, match=r"^settings.PGQRS must be a dict, not \['DA"):
            conf.get("MAX_ATTEMPTS")


def test_w001_unknown_key() -> None:
    with override_settings(PGQRS={"MAX_ATTEMPT": 3}):
        messages = [m for m in pgqrs_checks() if m.id == "pgqrs.W001"]
    assert len(messages) == 1 and "MAX_ATTEMPT" in messages[0].msg


def test_w002_stale_timeout_too_close_to_heartbeat() -> None:
    with override_settings(PGQRS={"HEARTBEAT_INTERVAL": 10, "STALE_WORKER_TIMEOUT": 15}):
        assert pgqrs_ids() == ["pgqrs.W002"]


ROUTER = "pgqrs_django.routers.PgqrsRouter"


def test_w003_database_alias_that_the_routers_do_not_follow() -> None:
    with override_settings(PGQRS={"DATABASE": "sqlite"}, DATABASE_ROUTERS=[]):
        messages = [m for m in pgqrs_checks() if m.id == "pgqrs.W003"]
    assert len(messages) == 1
    assert "send the pgqrs models to 'default'" in messages[0].msg
    assert ROUTER in (messages[0].hint or "")
    with override_settings(PGQRS={"DATABASE": "sqlite"}, DATABASE_ROUTERS=[ROUTER]):
        assert "pgqrs.W003" not in pgqrs_ids()


class _WritesHereMigratesNowhere:
    """A project router that sends pgqrs writes to the right alias but never migrates it."""

    def db_for_write(self, model: type, **hints: object) -> str:
        return conf.database()

    def allow_migrate(self, db: str, app_label: str, **hints: object) -> bool | None:
        return False if app_label == "pgqrs" else None


def test_w003_routers_that_do_not_migrate_the_pgqrs_tables() -> None:
    with override_settings(DATABASE_ROUTERS=[_WritesHereMigratesNowhere()]):
        messages = [m for m in pgqrs_checks() if m.id == "pgqrs.W003"]
    assert len(messages) == 1 and "do not let `migrate` create" in messages[0].msg


def test_unknown_key_lookup_is_a_programming_error() -> None:
    with pytest.raises(KeyError):
        conf.get("NOPE")
