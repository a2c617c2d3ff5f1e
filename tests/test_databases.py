"""PgqrsRouter: the pgqrs models go to PGQRS["DATABASE"], read at use time, and migrate only
there; other apps' models are left to the next router. (``make test-queue-db`` runs the whole
suite with the queue on a second database; test_queue_database.py checks that mode.)"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test.utils import override_settings

from pgqrs_django import conf
from pgqrs_django.models import Archive, Message, Queue, Worker
from pgqrs_django.routers import PgqrsRouter
from tests.testapp.models import Order

PGQRS_MODELS = [Queue, Worker, Message, Archive, Worker.queues.through]


@pytest.mark.parametrize("model", PGQRS_MODELS)
def test_pgqrs_models_are_routed_to_the_configured_alias_at_use_time(model: type) -> None:
    router = PgqrsRouter()
    assert router.db_for_read(model) == router.db_for_write(model) == conf.database()
    with override_settings(PGQRS={**settings.PGQRS, "DATABASE": "elsewhere"}):
        assert router.db_for_read(model) == router.db_for_write(model) == "elsewhere"


def test_other_models_are_left_to_the_next_router() -> None:
    router = PgqrsRouter()
    assert router.db_for_read(Order) is None and router.db_for_write(Order) is None
    assert router.allow_migrate("default", "testapp", "order") is None
    assert router.allow_migrate("elsewhere", "auth") is None


def test_pgqrs_migrates_only_on_its_alias() -> None:
    router = PgqrsRouter()
    with override_settings(PGQRS={"DATABASE": "elsewhere"}):
        assert router.allow_migrate("elsewhere", "pgqrs", "message") is True
        assert router.allow_migrate("default", "pgqrs", "message") is False
        assert router.allow_migrate("default", "pgqrs") is False  # RunSQL operations


def test_relations() -> None:
    router = PgqrsRouter()
    here, there = Queue(name="a"), Queue(name="b")
    here._state.db, there._state.db = "default", "elsewhere"
    assert router.allow_relation(here, Worker(name="w")) is True
    order = Order(reference="x")
    order._state.db = "default"
    # A relation between a pgqrs row and another app's row must stay on one database.
    assert router.allow_relation(here, order) is True
    assert router.allow_relation(order, there) is False
    assert router.allow_relation(order, Order(reference="y")) is None
