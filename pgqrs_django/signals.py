"""Signals pgqrs_django sends. Each is sent after the transaction that made the change
commits (at once in autocommit mode), so a receiver never sees a change that is rolled back.
Receivers' exceptions are logged and never break the queue operation.

Every signal passes ``queue`` (the queue name) besides the arguments listed.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from django.db import transaction
from django.dispatch import Signal

logger = logging.getLogger(__name__)

#: sender=Producer; ``messages``: the Message objects inserted.
message_enqueued = Signal()
#: sender=Consumer; ``messages``: the Message objects claimed; ``worker``: Worker or None.
message_claimed = Signal()
#: sender=Consumer; ``msg_ids``: ids archived as succeeded.
message_archived = Signal()
#: sender=Consumer; ``msg_id``, ``error`` (text), ``retry_in`` (seconds, or None when the
#: failure was final: outcome ``failed`` or dead-lettered).
message_failed = Signal()
#: sender=Consumer; ``msg_id``, ``error``, ``dead_letter_queue`` (name, or None when the
#: message was archived as ``dead``).
message_dead = Signal()
#: sender=the worker runtime class; ``worker``: the Worker row.
worker_started = Signal()
#: sender=the worker runtime class; ``worker``: the Worker row.
worker_stopped = Signal()


def _send(signal: Signal, sender: Any, kwargs: dict[str, Any]) -> None:
    for receiver, result in signal.send_robust(sender, **kwargs):
        if isinstance(result, Exception):
            logger.error("pgqrs signal receiver %r failed", receiver, exc_info=result)


def send_on_commit(signal: Signal, sender: Any, using: str, **kwargs: Any) -> None:
    """Send ``signal`` once the current transaction on ``using`` commits (now if none).

    Costs nothing when the signal has no receivers."""
    if signal.has_listeners(sender):
        transaction.on_commit(functools.partial(_send, signal, sender, kwargs), using=using)
