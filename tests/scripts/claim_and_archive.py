"""A consumer process for the concurrency test: claims batches until the queue is empty,
archives them, and prints every id it claimed as one JSON line."""

from __future__ import annotations

import json
import os
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

from pgqrs_django import Consumer  # noqa: E402


def main(queue: str, batch: int) -> None:
    consumer = Consumer(queue)
    consumer.queue  # noqa: B018 - look the queue up before the start line
    # Start together: say we are ready, then wait for the test's "go".
    print("ready", flush=True)
    sys.stdin.readline()
    claimed: list[int] = []
    archived: list[int] = []
    empty_rounds = 0
    while empty_rounds < 3:
        messages = consumer.dequeue_batch(batch, lock_time=300)
        if not messages:
            empty_rounds += 1
            continue
        empty_rounds = 0
        claimed.extend(m.id for m in messages)
        results = consumer.archive_batch(messages, results=[{"pid": os.getpid()}] * len(messages))
        archived.extend(m.id for m, ok in zip(messages, results, strict=True) if ok)
    print(json.dumps({"pid": os.getpid(), "claimed": claimed, "archived": archived}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
