"""The admin in a real browser: log in, watch the dashboard, retry a dead message, and take
the screenshots the docs show (into ``$PGQRS_SCREENSHOTS`` when set: ``make screenshots``)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test.utils import override_settings
from django.utils import timezone
from playwright.sync_api import expect

from pgqrs_django import Consumer, PgqrsAdmin, Producer
from pgqrs_django.models import Archive, Message, Worker
from tests.factories import ArchiveFactory, WorkerFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "e2e-password"


@pytest.fixture
def page(browser: Any, live_server: Any) -> Any:
    User.objects.create_superuser("operator", "op@example.com", PASSWORD)
    context = browser.new_context(
        viewport={"width": 1400, "height": 1000}, base_url=live_server.url
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto("/admin/login/?next=/admin/pgqrs/dashboard/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/pgqrs/dashboard/")
    yield page
    context.close()


def cell(page: Any, queue: str, column: str) -> Any:
    return page.locator(f'tr[data-queue="{queue}"] td[data-count="{column}"]')


def count(page: Any, queue: str, column: str) -> str:
    return str(cell(page, queue, column).text_content()).strip()


def test_dashboard_counts_follow_enqueues_with_auto_refresh(page: Any) -> None:
    PgqrsAdmin().create_queue("emails")
    page.reload()
    assert count(page, "emails", "ready") == "0"
    Producer("emails").batch_enqueue([{"to": f"user{i}@example.com"} for i in range(3)])
    page.reload()
    assert count(page, "emails", "ready") == "3"
    # Without any reload by the test: the page's own refresh picks up the new messages.
    with override_settings(PGQRS={"ADMIN_REFRESH_INTERVAL": 1}):
        page.reload()
        expect(page.locator("#pgqrs-monitor")).to_have_attribute("data-refresh-ms", "1000")
        Producer("emails").batch_enqueue([{"to": "late@example.com"}, {"to": "later"}])
        expect(cell(page, "emails", "ready")).to_have_text("5")
    held = Consumer("emails").dequeue()
    assert held is not None
    page.reload()
    assert (count(page, "emails", "ready"), count(page, "emails", "in_flight")) == ("4", "1")


def test_retry_a_dead_message_from_the_archive(page: Any) -> None:
    PgqrsAdmin().create_queue("reports", max_attempts=1)
    sent = Producer("reports").enqueue({"report": "monthly"})
    consumer = Consumer("reports")
    held = consumer.dequeue()
    assert held is not None and held.pk == sent.pk
    consumer.fail(held, "ValueError: the month has no days")
    assert Archive.objects.get(pk=sent.pk).outcome == Archive.Outcome.DEAD
    page.reload()
    assert count(page, "reports", "dead") == "1"

    page.goto("/admin/pgqrs/archive/?outcome__exact=dead")
    page.check(f'input[name="_selected_action"][value="{sent.pk}"]')
    page.select_option('select[name="action"]', "retry")
    page.click('button[name="index"]')
    page.wait_for_selector("ul.messagelist")
    assert "1 message put back in its queue." in str(page.text_content("ul.messagelist"))
    back = Message.objects.get(pk=sent.pk)
    assert back.read_ct == 0 and not Archive.objects.filter(pk=sent.pk).exists()

    page.goto("/admin/pgqrs/dashboard/")
    assert (count(page, "reports", "dead"), count(page, "reports", "ready")) == ("0", "1")


def screenshot_dir(tmp_path: Path) -> Path:
    target = os.environ.get("PGQRS_SCREENSHOTS")
    return Path(target) if target else tmp_path


def fill_demo_data() -> None:
    """Queues, workers and an hour of history that look like a working system."""
    admin = PgqrsAdmin()
    now = timezone.now()
    for name, ready, rate, failing in [
        ("emails", 12, 40, 1),
        ("thumbnails", 3, 15, 0),
        ("reports", 0, 4, 2),
    ]:
        queue = admin.create_queue(name)
        Producer(name).batch_enqueue([{"n": i} for i in range(ready)])
        Producer(name).batch_enqueue([{"later": i} for i in range(2)], delay=600)
        rows = []
        for minute in range(60):
            for i in range(rate * (1 + (minute % 7 == 0))):
                outcome = "dead" if i < failing and minute % 5 == 0 else "succeeded"
                rows.append(
                    Archive(
                        id=10_000_000 + len(rows) + 100_000 * queue.pk,
                        queue=queue,
                        payload={"n": i},
                        enqueued_at=now,
                        vt=now,
                        archived_at=now - dt.timedelta(minutes=minute, seconds=i % 60),
                        outcome=outcome,
                        duration=0.05,
                    )
                )
        Archive.objects.bulk_create(rows)
        worker = WorkerFactory(name=f"web-1-{name}", hostname="web-1")
        worker.queues.set([queue])
    held = Consumer("emails").dequeue_batch(2)
    assert len(held) == 2
    stale = WorkerFactory(name="web-2-emails", hostname="web-2")
    stale.queues.set([admin.get_queue("emails")])
    Worker.objects.filter(pk=stale.pk).update(heartbeat_at=now - dt.timedelta(minutes=5))
    ArchiveFactory(
        queue=admin.get_queue("reports"),
        outcome="dead",
        payload={"report": "quarterly", "note": "<b>not bold</b>"},
        error="Traceback (most recent call last):\n  ...\nValueError: <no data>",
    )


def test_screenshots_of_the_dashboard_and_the_archive(page: Any, tmp_path: Path) -> None:
    fill_demo_data()
    target = screenshot_dir(tmp_path)
    target.mkdir(parents=True, exist_ok=True)
    with override_settings(PGQRS={"ADMIN_REFRESH_INTERVAL": None}):
        page.goto("/admin/pgqrs/dashboard/")
        assert count(page, "emails", "in_flight") == "2"
        assert page.locator("span.pgqrs-stale").count() == 1
        page.screenshot(path=str(target / "dashboard.png"), full_page=True)
        page.set_viewport_size({"width": 1800, "height": 900})
        page.goto("/admin/pgqrs/archive/?outcome__exact=dead")
        assert "&lt;b&gt;" in page.content() and page.locator("b", has_text="not bold").count() == 0
        page.screenshot(path=str(target / "archive.png"))
    for name in ("dashboard.png", "archive.png"):
        data = (target / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
