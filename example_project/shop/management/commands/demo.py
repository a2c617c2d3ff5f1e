"""`manage.py demo` (what `make demo` runs): the whole product on the project's database.

It migrates, creates the queues and a demo admin user, signs up customers with their welcome
email enqueued in the same transaction, enqueues a few thousand jobs, drains them with two
`pgqrs_worker` processes in burst mode, and prints the metrics and the dead-lettered jobs.
Running it again starts from a clean slate.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.db.models import Min
from django.utils import timezone

from pgqrs_django import PgqrsAdmin, Producer
from pgqrs_django.exceptions import QueueNotFound
from pgqrs_django.formatting import METRICS_COLUMNS, Progress, metrics_row, render_table
from pgqrs_django.models import Archive, Message
from shop.models import Customer

QUEUES = ("emails", "images", "reports")
WORKERS = 2
DEMO_USER, DEMO_PASSWORD = "admin", "admin"
LOG_DIR = Path(settings.BASE_DIR) / ".demo"


class Command(BaseCommand):
    help = "Run the pgqrs demo: enqueue jobs, drain them with two workers, print the metrics."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--jobs", type=int, default=3000, help="background jobs to enqueue (default 3000)"
        )

    def handle(self, *args: Any, jobs: int, **options: Any) -> None:
        if jobs < 10:
            raise CommandError("--jobs must be at least 10")
        self.admin = PgqrsAdmin()
        self.step("Preparing the database")
        call_command("migrate", verbosity=0)
        self.reset()
        self.create_demo_user()

        self.step("Signing up customers (each welcome email is enqueued in the same transaction)")
        signups = self.sign_up_customers()

        self.step(f"Enqueueing {jobs:,} jobs")
        enqueued = signups + self.enqueue_jobs(jobs)

        self.step(f"Draining with {WORKERS} pgqrs_worker processes in burst mode")
        started = time.monotonic()
        self.drain(enqueued)
        elapsed = time.monotonic() - started

        self.step("Queue metrics")
        metrics = self.admin.all_queues_metrics()
        self.stdout.write(render_table([metrics_row(m) for m in metrics], METRICS_COLUMNS))
        self.show_dead_letters()

        succeeded = sum(m.succeeded for m in metrics)
        dead = sum(m.dead for m in metrics)
        if succeeded + dead != enqueued or any(m.pending or m.failed for m in metrics):
            raise CommandError(
                f"accounting failed: {succeeded} succeeded + {dead} dead != {enqueued} enqueued"
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"\nEvery job accounted for: {succeeded:,} succeeded + {dead:,} dead = "
                f"{enqueued:,} enqueued, drained in {elapsed:.1f} s "
                f"({enqueued / elapsed:,.0f} jobs/s)."
            )
        )
        self.stdout.write(
            "\nSee it in the admin: run `make serve`, open http://127.0.0.1:8000/admin/ and log "
            f"in as {DEMO_USER} / {DEMO_PASSWORD}.\nWorker logs (with the welcome emails "
            f"printed by the console email backend) are in {LOG_DIR}."
        )

    def step(self, text: str) -> None:
        self.stdout.write(self.style.MIGRATE_HEADING(f"\n== {text}"))

    # -- set-up ----------------------------------------------------------------------------

    def reset(self) -> None:
        """Start from a clean slate, so the demo can run again and again."""
        for name in QUEUES:
            with contextlib.suppress(QueueNotFound):
                self.admin.delete_queue(name)
            self.admin.create_queue(name, visibility_timeout=30, max_attempts=3)
        self.admin.purge_old_workers(older_than=0)
        Customer.objects.filter(email__endswith="@demo.example").delete()

    def create_demo_user(self) -> None:
        user_model = get_user_model()
        if not user_model.objects.filter(username=DEMO_USER).exists():
            user_model.objects.create_superuser(DEMO_USER, "admin@demo.example", DEMO_PASSWORD)
            self.stdout.write(f"created the superuser {DEMO_USER} / {DEMO_PASSWORD}")

    def sign_up_customers(self) -> int:
        emails = Producer("emails")
        for name in ("ada", "grace", "edsger"):
            with transaction.atomic():
                customer = Customer.objects.create(email=f"{name}@demo.example")
                emails.enqueue({"to": customer.email, "name": name.title()})
        # A signup whose payment fails rolls back: no customer, and no welcome email either.
        with contextlib.suppress(RuntimeError), transaction.atomic():
            Customer.objects.create(email="mallory@demo.example")
            emails.enqueue({"to": "mallory@demo.example", "name": "Mallory"})
            raise RuntimeError("card declined")
        queued = self.admin.queue_metrics("emails").ready
        self.stdout.write(f"3 signups committed, 1 rolled back -> {queued} welcome emails queued")
        return queued

    def enqueue_jobs(self, jobs: int) -> int:
        """A third emails, a sixth images, the rest reports; in batches of 500."""
        plan: list[tuple[str, list[dict[str, Any]]]] = [
            ("emails", [{"to": f"user{n}@demo.example"} for n in range(jobs // 3)]),
            (
                "images",
                [{"width": 200 + n % 800, "height": 150 + n % 600} for n in range(jobs // 6)],
            ),
        ]
        plan.append(
            ("reports", [{"day": n} for n in range(1, jobs - sum(len(p) for _, p in plan) + 1)])
        )
        progress = self.progress("enqueued")
        done = 0
        for queue, payloads in plan:
            producer = Producer(queue)
            for start in range(0, len(payloads), 500):
                done += len(producer.batch_enqueue(payloads[start : start + 500]))
                progress(done, done / jobs)
        progress(done, 1.0, final=True)
        return done

    # -- draining --------------------------------------------------------------------------

    def drain(self, total: int) -> None:
        """Run rounds of burst workers until nothing is pending. A burst worker exits when
        nothing is ready; retries waiting for their backoff need another round."""
        LOG_DIR.mkdir(exist_ok=True)
        progress = self.progress("processed")
        for round_number in range(1, 30):
            workers = [self.start_worker(round_number, n) for n in range(WORKERS)]
            while any(w.poll() is None for w in workers):
                progress(self.finished(), self.finished() / total)
                time.sleep(0.2)
            if any(w.returncode != 0 for w in workers):
                raise CommandError(f"a worker failed; see its log in {LOG_DIR}")
            pending = Message.objects.filter(queue__name__in=QUEUES)
            if not pending.exists():
                progress(self.finished(), 1.0, final=True)
                return
            # Only retries waiting for their backoff are left: wait until the first is due.
            due = pending.aggregate(Min("vt"))["vt__min"]
            time.sleep(min(5.0, max(0.05, (due - timezone.now()).total_seconds())))
        raise CommandError("the queues did not drain")

    def start_worker(self, round_number: int, n: int) -> subprocess.Popen[bytes]:
        command = [
            sys.executable,
            str(Path(settings.BASE_DIR) / "manage.py"),
            "pgqrs_worker",
            "--burst",
            "--concurrency",
            "4",
            "--batch-size",
            "50",
            "--name",
            f"demo-{n + 1}",
            "--log-level",
            "warning",
        ]
        for queue in QUEUES:
            command += ["--queue", queue]
        log = (LOG_DIR / f"worker-{n + 1}.log").open("a" if round_number > 1 else "w")
        with log:
            return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

    def finished(self) -> int:
        return Archive.objects.filter(queue__name__in=QUEUES).count()

    def show_dead_letters(self) -> None:
        dead = Archive.objects.filter(queue__name__in=QUEUES).dead().select_related("queue")
        count = dead.count()
        self.stdout.write(f"\nDead-lettered jobs ({count}, after {3} attempts each):")
        for row in dead.order_by("id")[:10]:
            reason = row.error.strip().splitlines()[-1] if row.error.strip() else ""
            self.stdout.write(f"  #{row.id} {row.queue.name} {row.payload}: {reason}")
        if count > 10:
            self.stdout.write(
                f"  ... and {count - 10} more (see the admin's archive, filtered by outcome 'dead')"
            )

    def progress(self, label: str) -> Any:
        """A progress bar on a terminal; a line every two seconds otherwise (CI logs)."""
        # Progress rewrites one line, so it needs the raw stream, not OutputWrapper's lines.
        bar = Progress(self.stdout._out, label) if self.stdout.isatty() else None
        last = [0.0]

        def report(done: int, fraction: float, *, final: bool = False) -> None:
            if bar is not None:
                (bar.close if final else bar.update)(done, fraction)
            elif final or time.monotonic() - last[0] >= 2:
                last[0] = time.monotonic()
                self.stdout.write(f"  {label} {done:,} ({fraction:.0%})")

        return report
