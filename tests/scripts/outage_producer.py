"""A producer process for tests/test_outage.py: enqueues one message at a time, on each
QUEUE in turn, every INTERVAL seconds until a line arrives on stdin, recording each attempt,
then prints one JSON line.

    python -m tests.scripts.outage_producer INTERVAL QUEUE [QUEUE ...]

Each attempt has a number ``n`` (the payload); the report lists the numbers enqueued, and
the numbers refused with the exception type and message. Any exception other than
DatabaseUnavailable is reported as such (the test fails on it).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

from pgqrs_django import Producer  # noqa: E402
from pgqrs_django.exceptions import DatabaseUnavailable  # noqa: E402


def main(interval: float, queues: list[str]) -> None:
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
    producers = [Producer(queue) for queue in queues]
    sent: list[int] = []
    refused: list[dict[str, object]] = []
    n = 0
    print("ready", flush=True)
    while not stop.is_set():
        n += 1
        try:
            producers[n % len(producers)].enqueue({"n": n})
        except DatabaseUnavailable as exc:
            refused.append({"n": n, "type": "DatabaseUnavailable", "error": str(exc)})
            time.sleep(0.2)
            continue
        except Exception as exc:  # reported, and the test fails
            refused.append({"n": n, "type": type(exc).__name__, "error": str(exc)})
            time.sleep(0.2)
            continue
        sent.append(n)
        time.sleep(interval)
    print(json.dumps({"sent": sent, "refused": refused}), flush=True)


if __name__ == "__main__":
    main(float(sys.argv[1]), sys.argv[2:])
