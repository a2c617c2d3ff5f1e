"""`manage.py demo`: the queue end to end on whatever database the project uses."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from pgqrs_django import Consumer, PgqrsAdmin, Producer
from pgqrs_django.exceptions import QueueNotFound
from shop.models import Customer

QUEUES = ("emails", "reports")


def handle_job(payload: dict[str, Any]) -> dict[str, Any]:
    """The demo's job: every 25th job is broken and fails every time it runs."""
    if payload.get("n", 1) % 25 == 0:
        raise ValueError(f"job {payload['n']} has a corrupt input file")
    return {"rows": payload.get("n", 0) * 2}


class Command(BaseCommand):
    help = "Run the pgqrs demo: enqueue jobs, process them, print the queue metrics."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--jobs", type=int, default=500, help="jobs to enqueue (default 500)")

    def handle(self, *args: Any, jobs: int, **options: Any) -> None:
        if jobs < 1:
            raise CommandError("--jobs must be at least 1")
        call_command("migrate", verbosity=0)
        admin = PgqrsAdmin()
        for name in QUEUES:  # start from a clean slate, so the demo can run again
            with contextlib.suppress(QueueNotFound):
                admin.delete_queue(name)
            admin.create_queue(name, visibility_timeout=30, max_attempts=3)
        Customer.objects.filter(email__endswith="@demo.example").delete()

        # Transactional enqueue: the welcome email exists only if the signup commits.
        emails = Producer("emails")
        with transaction.atomic():
            customer = Customer.objects.create(email="ada@demo.example")
            emails.enqueue({"to": customer.email, "template": "welcome"})
        try:
            with transaction.atomic():
                Customer.objects.create(email="bob@demo.example")
                emails.enqueue({"to": "bob@demo.example", "template": "welcome"})
                raise RuntimeError("card declined")
        except RuntimeError:
            pass
        self.stdout.write(
            f"signups committed: 1, rolled back: 1 -> welcome emails queued: "
            f"{admin.queue_metrics('emails').ready}"
        )

        reports = Producer("reports")
        sent = reports.batch_enqueue([{"n": n} for n in range(1, jobs + 1)])
        self.stdout.write(f"enqueued {len(sent)} report jobs in one round trip")

        started = time.monotonic()
        for name in QUEUES:
            self._drain(name)
        elapsed = time.monotonic() - started

        self.stdout.write(f"\nprocessed in {elapsed:.1f} s\n")
        self._print_metrics(admin)
        metrics = {m.name: m for m in admin.all_queues_metrics()}
        total = jobs + 1
        settled = sum(m.succeeded + m.dead for m in metrics.values())
        if settled != total or any(m.pending for m in metrics.values()):
            raise CommandError(f"accounting failed: {settled} settled of {total} enqueued")
        self.stdout.write(
            self.style.SUCCESS(f"all {total} jobs accounted for: succeeded + dead = enqueued")
        )

    def _drain(self, queue: str) -> None:
        consumer = Consumer(queue)
        admin = PgqrsAdmin()
        while admin.queue_metrics(queue).pending:
            batch = consumer.dequeue_batch(50)
            if not batch:
                time.sleep(0.1)  # the rest is waiting for a retry
                continue
            done = []
            for message in batch:
                try:
                    done.append((message, handle_job(message.payload)))
                except Exception as exc:
                    consumer.fail(message, exc)
            consumer.archive_batch([m for m, _ in done], results=[r for _, r in done])

    def _print_metrics(self, admin: PgqrsAdmin) -> None:
        columns = ["queue", "ready", "delayed", "in_flight", "succeeded", "dead", "archived"]
        rows = [
            [m.name, m.ready, m.delayed, m.in_flight, m.succeeded, m.dead, m.archived]
            for m in admin.all_queues_metrics()
        ]
        widths = [
            max(len(str(v)) for v in [c, *[r[i] for r in rows]]) for i, c in enumerate(columns)
        ]
        for line in [columns, *rows]:
            self.stdout.write("  ".join(str(v).rjust(w) for v, w in zip(line, widths, strict=True)))
