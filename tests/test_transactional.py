"""Transactional enqueue: a message exists exactly when the transaction that made it commits."""

from __future__ import annotations

import pytest
from django.db import transaction

from pgqrs_django import Consumer, PgqrsAdmin, Producer
from pgqrs_django.models import Message
from tests.conftest import in_other_connection
from tests.testapp.models import Order

pytestmark = pytest.mark.pgbouncer


def _dequeue_in_other_connection(queue: str) -> int | None:
    """Claim from a separate thread, hence a separate database connection."""
    msg = in_other_connection(Consumer(queue).dequeue)
    return msg.id if msg else None


@pytest.mark.django_db(transaction=True)
def test_message_is_invisible_until_commit_then_claimable() -> None:
    PgqrsAdmin().create_queue("orders")
    producer = Producer("orders")
    with transaction.atomic():
        order = Order.objects.create(reference="A-1")
        msg = producer.enqueue({"order": order.pk})
        assert _dequeue_in_other_connection("orders") is None
    assert Order.objects.filter(reference="A-1").exists()
    assert _dequeue_in_other_connection("orders") == msg.id


@pytest.mark.django_db(transaction=True)
def test_rolled_back_transaction_leaves_no_message() -> None:
    PgqrsAdmin().create_queue("orders")
    producer = Producer("orders")
    with pytest.raises(RuntimeError), transaction.atomic():
        Order.objects.create(reference="B-2")
        producer.enqueue({"order": "B-2"})
        producer.batch_enqueue([{"n": 1}, {"n": 2}])
        raise RuntimeError("payment declined")
    assert not Order.objects.exists()
    assert not Message.objects.exists()
    assert _dequeue_in_other_connection("orders") is None


@pytest.mark.django_db(transaction=True)
def test_savepoint_rollback_discards_only_its_messages() -> None:
    PgqrsAdmin().create_queue("orders")
    producer = Producer("orders")
    with transaction.atomic():
        kept = producer.enqueue({"kept": True})
        try:
            with transaction.atomic():
                producer.enqueue({"dropped": True})
                raise ValueError
        except ValueError:
            pass
    assert list(Message.objects.values_list("pk", flat=True)) == [kept.id]
