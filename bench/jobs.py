"""Benchmark handlers (autodiscovered: ``bench`` is an installed app in bench.settings)."""

from __future__ import annotations

import time
from typing import Any

import pgqrs_django
from bench import runner
from pgqrs_django.models import Message


@pgqrs_django.handler("bench-drain")
def trivial(message: Message) -> None:
    """Only counts (bench.runner.count): measures the queue, not the job."""
    runner.count(message)


@pgqrs_django.handler("bench-drain-async")
async def trivial_async(message: Message) -> None:
    """Does nothing, asynchronously."""


@pgqrs_django.handler("bench-latency")
def started_at(message: Message) -> dict[str, Any]:
    """Reports when it started (wall clock), for enqueue-to-start latency."""
    return {"started": time.time()}
