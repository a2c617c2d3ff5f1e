"""The Django admin: every page and action through the test client, with effects in the
database, permission denials for every URL of the app, bounded query counts and escaping."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib import admin as django_admin
from django.contrib.auth.models import Permission, User
from django.db.models import F
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings
from django.urls import reverse
from django.utils import timezone

from pgqrs_django import Consumer, PgqrsAdmin, Producer
from pgqrs_django.admin import COUNT_LIMIT, EstimatedCountPaginator
from pgqrs_django.exceptions import InvalidInput
from pgqrs_django.models import Archive, Dashboard, Message, Queue, Worker
from tests.admin_support import act, change, changelist, client_for, make_rows, staff
from tests.databases import pgqrs_connection
from tests.factories import ArchiveFactory, MessageFactory, QueueFactory, WorkerFactory

pytestmark = pytest.mark.django_db

XSS = "<script>alert(1)</script>"
HTML_ERROR = 'Traceback:\n  <img src=x onerror="alert(2)">\nValueError: <b>bad</b>'


@pytest.fixture
def rows(admin: PgqrsAdmin) -> dict[str, Any]:
    return make_rows(admin)


# -- every URL of the app, enumerated from the admin's URL patterns -------------------------


def app_urls(rows: dict[str, Any]) -> list[str]:
    """Every admin URL of the pgqrs app, built from the registered ModelAdmins' patterns so
    a URL added later is tested too (object ids filled with a real row)."""
    objects = {
        Queue: rows["queue"],
        Message: rows["message"],
        Archive: rows["archive"],
        Worker: rows["worker"],
        Dashboard: None,
    }
    urls = [reverse("admin:app_list", kwargs={"app_label": "pgqrs"})]
    base = reverse("admin:index")
    for model, model_admin in django_admin.site._registry.items():
        if model._meta.app_label != "pgqrs":
            continue
        for pattern in model_admin.get_urls():
            route = str(pattern.pattern)
            obj = objects[model]
            if "<" in route:
                assert obj is not None, f"{model.__name__} has an object URL {route}"
                route = re.sub(r"<(?:\w+:)?object_id>", str(obj.pk), route)
            assert "<" not in route, f"unfilled URL parameter in {route}"
            urls.append(f"{base}pgqrs/{model._meta.model_name}/{route}")
    return urls


def test_the_url_list_covers_every_registered_model(rows: dict[str, Any]) -> None:
    urls = app_urls(rows)
    for model in (Queue, Message, Archive, Worker, Dashboard):
        assert changelist(model) in urls
    assert change(rows["archive"]) in urls
    assert len(urls) == len(set(urls)) >= 20


@pytest.mark.parametrize("who", ["anonymous", "non-staff with every pgqrs permission"])
def test_anonymous_and_non_staff_users_are_sent_to_login_everywhere(
    rows: dict[str, Any], who: str
) -> None:
    client = Client()
    if who != "anonymous":
        user = User.objects.create_user("visitor", password="pw")
        user.user_permissions.set(Permission.objects.filter(content_type__app_label="pgqrs"))
        client.force_login(user)
    for url in app_urls(rows):
        for method in (client.get, client.post):
            response = method(url)
            assert response.status_code == 302, url
            assert response["Location"].startswith(reverse("admin:login")), url


def test_staff_without_permission_get_403_everywhere(rows: dict[str, Any]) -> None:
    client = client_for(staff("clerk"))
    for url in app_urls(rows):
        if url == reverse("admin:app_list", kwargs={"app_label": "pgqrs"}):
            # An app the user has no permission in does not exist for them.
            assert client.get(url).status_code == 404
            continue
        for method in (client.get, client.post):
            response = method(url, follow=True)
            assert response.status_code == 403, url


def test_change_pages_are_read_only_even_for_superusers(
    admin_client: Client, rows: dict[str, Any]
) -> None:
    for obj in (rows["queue"], rows["message"], rows["archive"], rows["worker"]):
        page = admin_client.get(change(obj))
        assert page.status_code == 200
        assert b'name="_save"' not in page.content
        assert admin_client.post(change(obj), {"name": "renamed"}).status_code == 403
    for model in (Queue, Message, Archive, Worker):
        add = reverse(f"admin:pgqrs_{model._meta.model_name}_add")
        assert admin_client.get(add).status_code == 403
    assert Queue.objects.get().name == "jobs"


def test_actions_need_a_csrf_token(admin_user: User, rows: dict[str, Any]) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    assert act(client, Queue, "pause", rows["queue"].pk).status_code == 403
    assert not Queue.objects.get().paused


# -- pages ------------------------------------------------------------------------------------


def test_every_page_renders_for_a_superuser(admin_client: Client, rows: dict[str, Any]) -> None:
    for url in [
        reverse("admin:index"),
        reverse("admin:app_list", kwargs={"app_label": "pgqrs"}),
        *(changelist(m) for m in (Queue, Message, Archive, Worker, Dashboard)),
        *(change(rows[k]) for k in ("queue", "message", "archive", "worker")),
    ]:
        assert admin_client.get(url).status_code == 200, url
    index = admin_client.get(reverse("admin:index")).content.decode()
    assert changelist(Dashboard) in index


def test_message_changelist_columns_filters_and_search(
    admin_client: Client, rows: dict[str, Any], shift_time: Callable[..., None]
) -> None:
    other = QueueFactory(name="other")
    Producer("other").enqueue({"needle": "haystack"}, delay=600)
    page = admin_client.get(changelist(Message)).content.decode()
    assert "in flight" in page and "ready" in page and "delayed" in page
    assert "jobs" in page and "other" in page

    def ids(query: str) -> set[int]:
        response = admin_client.get(changelist(Message) + query)
        return {row.pk for row in response.context["cl"].result_list}

    everything = set(Message.objects.values_list("pk", flat=True))
    assert ids("") == everything
    assert ids(f"?queue__id__exact={other.pk}") == set(
        Message.objects.filter(queue=other).values_list("pk", flat=True)
    )
    assert ids("?state=in_flight") == {rows["message"].pk}
    assert ids("?state=delayed") == set(Message.objects.delayed().values_list("pk", flat=True))
    assert ids("?state=ready") == set(Message.objects.ready().values_list("pk", flat=True))
    assert ids("?q=haystack") == set(
        Message.objects.filter(queue=other).values_list("pk", flat=True)
    )
    assert ids(f"?q={rows['message'].pk}") == {rows["message"].pk}
    assert ids("?q=nothing-like-this") == set()


def test_archive_changelist_filters_search_and_date_hierarchy(
    admin_client: Client, rows: dict[str, Any]
) -> None:
    queue = rows["queue"]
    ok = ArchiveFactory(queue=queue, payload={"city": "Lisbon"}, result={"sent": 3})
    old = ArchiveFactory(
        queue=queue, archived_at=timezone.now() - dt.timedelta(days=400), outcome="failed"
    )

    def ids(query: str) -> set[int]:
        response = admin_client.get(changelist(Archive) + query)
        assert response.status_code == 200, query
        return {row.pk for row in response.context["cl"].result_list}

    assert ids("") == {ok.pk, old.pk, rows["archive"].pk}
    assert ids("?outcome__exact=dead") == {rows["archive"].pk}
    assert ids(f"?queue__id__exact={queue.pk}&outcome__exact=failed") == {old.pk}
    assert ids("?q=lisbon") == {ok.pk}
    assert ids(f"?q={old.pk}") == {old.pk}
    year = old.archived_at.year
    assert ids(f"?archived_at__year={year}") == {old.pk}
    page = admin_client.get(change(ok)).content.decode()
    assert "&quot;sent&quot;: 3" in page and "Lisbon" in page


def test_archive_date_drill_down_is_a_calendar(admin_client: Client, rows: dict[str, Any]) -> None:
    old = ArchiveFactory(queue=rows["queue"], archived_at=timezone.now() - dt.timedelta(days=800))
    Archive.objects.filter(pk=old.pk).update(id=1)  # the oldest id: where the years start
    today = timezone.localdate()

    def calendar(query: str) -> dict[str, Any]:
        response = admin_client.get(changelist(Archive) + query)
        assert response.status_code == 200
        found: dict[str, Any] = response.context["calendar"]
        return found

    years = [c["title"] for c in calendar("")["choices"]]
    assert years == [str(y) for y in range(old.archived_at.year, today.year + 1)]
    months = calendar(f"?archived_at__year={today.year}")["choices"]
    assert len(months) == today.month
    assert f"archived_at__month={today.month}" in months[-1]["link"]
    days = calendar(f"?archived_at__year={today.year}&archived_at__month={today.month}")
    assert len(days["choices"]) == today.day and days["back"]["title"] == str(today.year)
    leap = calendar("?archived_at__year=2024&archived_at__month=2")["choices"]
    assert len(leap) == 29
    one = calendar("?archived_at__year=2024&archived_at__month=2&archived_at__day=29")
    assert "archived_at__month=2" in one["back"]["link"] and len(one["choices"]) == 1


def test_text_search_reads_only_the_newest_rows(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pgqrs_django.admin import messages as pgqrs_admin

    queue = QueueFactory(name="jobs")
    rows = [ArchiveFactory(queue=queue, id=i, payload={"word": "needle"}) for i in range(1, 6)]
    monkeypatch.setattr(pgqrs_admin, "SEARCH_WINDOW", 3)
    found = admin_client.get(changelist(Archive) + "?q=needle").context["cl"].result_list
    assert {r.pk for r in found} == {r.pk for r in rows[2:]}
    # An id is found wherever it is.
    assert [
        r.pk for r in admin_client.get(changelist(Archive) + "?q=1").context["cl"].result_list
    ] == [1]


def test_worker_changelist_flags_stale_workers(admin_client: Client, rows: dict[str, Any]) -> None:
    stale = WorkerFactory(name="silent")
    Worker.objects.filter(pk=stale.pk).update(heartbeat_at=timezone.now() - dt.timedelta(hours=1))
    response = admin_client.get(changelist(Worker))
    found = {w.name: w for w in response.context["cl"].result_list}
    assert found["silent"].is_stale and not found[rows["worker"].name].is_stale
    assert "jobs" in response.content.decode()
    filtered = admin_client.get(changelist(Worker) + "?status__exact=stopped")
    assert list(filtered.context["cl"].result_list) == []


# -- actions ----------------------------------------------------------------------------------


def test_pause_and_resume_queues(admin_client: Client, rows: dict[str, Any]) -> None:
    queue = rows["queue"]
    assert act(admin_client, Queue, "pause", queue.pk).status_code == 302
    assert Queue.objects.get().paused
    assert Consumer("jobs").dequeue() is None
    act(admin_client, Queue, "resume", queue.pk)
    assert not Queue.objects.get().paused
    assert Consumer("jobs").dequeue() is not None


def test_purge_asks_for_confirmation_then_purges(
    admin_client: Client, rows: dict[str, Any]
) -> None:
    queue = rows["queue"]
    page = act(admin_client, Queue, "purge", queue.pk)
    assert page.status_code == 200
    assert "Purge queues" in page.content.decode()
    assert Message.objects.count() == 2
    done = act(admin_client, Queue, "purge", queue.pk, confirm="yes")
    assert done.status_code == 302
    assert Message.objects.count() == 0
    assert Archive.objects.count() == 1


def test_delete_queue_asks_for_confirmation_then_deletes(
    admin_client: Client, rows: dict[str, Any]
) -> None:
    keep = QueueFactory(name="keep")
    queue = rows["queue"]
    page = act(admin_client, Queue, "delete_selected", queue.pk)
    assert page.status_code == 200 and "Delete queues" in page.content.decode()
    assert Queue.objects.count() == 2
    act(admin_client, Queue, "delete_selected", queue.pk, confirm="yes")
    assert list(Queue.objects.all()) == [keep]
    assert not Message.objects.exists() and not Archive.objects.exists()
    # Ours replaces the stock action of that name (an ORM delete listing every message).
    actions = admin_client.get(changelist(Queue)).context["action_form"].fields["action"]
    assert dict(actions.choices)["delete_selected"] == "Delete selected queues…"


def test_release_in_flight_messages(admin_client: Client, rows: dict[str, Any]) -> None:
    held = rows["message"]
    act(admin_client, Message, "release", held.pk)
    row = Message.objects.get(pk=held.pk)
    assert row.claimed_at is None and row.consumer is None
    assert Message.objects.in_flight().count() == 0
    assert Message.objects.ready().count() == 2


def test_delete_messages_asks_for_confirmation(admin_client: Client, rows: dict[str, Any]) -> None:
    held = rows["message"]
    page = act(admin_client, Message, "delete_selected", held.pk)
    assert page.status_code == 200 and "Are you sure" in page.content.decode()
    assert Message.objects.filter(pk=held.pk).exists()
    act(admin_client, Message, "delete_selected", held.pk, post="yes")
    assert not Message.objects.filter(pk=held.pk).exists()
    assert Message.objects.count() == 1
    # And one by one from its own page.
    last = Message.objects.get()
    delete_url = reverse("admin:pgqrs_message_delete", args=[last.pk])
    assert admin_client.get(delete_url).status_code == 200
    admin_client.post(delete_url, {"post": "yes"})
    assert not Message.objects.exists()


def test_retry_dead_messages(admin_client: Client, rows: dict[str, Any]) -> None:
    dead = rows["archive"]
    done = ArchiveFactory(queue=rows["queue"])
    response = act(admin_client, Archive, "retry", dead.pk, done.pk, follow=True)
    back = Message.objects.get(pk=dead.pk)
    assert back.queue == rows["queue"] and back.read_ct == 0
    assert not Archive.objects.filter(pk=dead.pk).exists()
    assert Archive.objects.filter(pk=done.pk).exists()
    notes = [str(m) for m in response.wsgi_request._messages]
    assert "1 message put back in its queue." in notes
    assert "1 selected message was neither dead nor failed." in notes


def test_suspend_resume_and_shutdown_workers(admin_client: Client, rows: dict[str, Any]) -> None:
    worker = rows["worker"]
    act(admin_client, Worker, "suspend", worker.pk)
    assert Worker.objects.get(pk=worker.pk).status == Worker.Status.SUSPENDED
    act(admin_client, Worker, "resume", worker.pk)
    assert Worker.objects.get(pk=worker.pk).status == Worker.Status.READY
    act(admin_client, Worker, "shutdown", worker.pk)
    assert Worker.objects.get(pk=worker.pk).shutdown_requested
    stopped = WorkerFactory(status=Worker.Status.STOPPED)
    response = admin_client.post(
        changelist(Worker),
        {"action": "suspend", "_selected_action": [str(stopped.pk)], "index": "0"},
        follow=True,
    )
    assert Worker.objects.get(pk=stopped.pk).status == Worker.Status.STOPPED
    assert any("is stopped" in str(m) for m in response.context["messages"])


# -- dashboard --------------------------------------------------------------------------------


def test_dashboard_shows_counts_chart_and_workers(
    admin_client: Client, rows: dict[str, Any]
) -> None:
    Producer("jobs").enqueue({"later": True}, delay=600)
    QueueFactory(name="idle")
    ArchiveFactory(queue=rows["queue"], archived_at=timezone.now() - dt.timedelta(minutes=2))
    stale = WorkerFactory(name="silent")
    stale.queues.set([rows["queue"]])
    Worker.objects.filter(pk=stale.pk).update(heartbeat_at=timezone.now() - dt.timedelta(hours=1))
    response = admin_client.get(changelist(Dashboard))
    assert response.status_code == 200
    queues = {row["metrics"].name: row for row in response.context["queues"]}
    jobs = queues["jobs"]["metrics"]
    assert (jobs.ready, jobs.delayed, jobs.in_flight, jobs.dead, jobs.archived) == (1, 1, 1, 1, 2)
    assert queues["jobs"]["per_minute"] == pytest.approx(2 / 5)
    assert queues["idle"]["metrics"].pending == 0
    hour, day = response.context["charts"]
    assert (hour["total"], hour["failures"]) == (2, 1)
    assert len(hour["bars"]) == 60 and len(day["bars"]) == 96
    workers = {row["worker"].name: row for row in response.context["workers"]}
    assert workers["silent"]["stale"] and not workers[rows["worker"].name]["stale"]
    html = response.content.decode()
    assert 'class="pgqrs-stale"' in html and "<svg" in html
    assert 'data-refresh-ms="10000"' in html


def test_dashboard_refresh_interval_comes_from_settings(admin_client: Client) -> None:
    with override_settings(PGQRS={**settings.PGQRS, "ADMIN_REFRESH_INTERVAL": 2.5}):
        assert 'data-refresh-ms="2500"' in admin_client.get(changelist(Dashboard)).content.decode()
    with override_settings(PGQRS={**settings.PGQRS, "ADMIN_REFRESH_INTERVAL": None}):
        page = admin_client.get(changelist(Dashboard)).content.decode()
    assert 'data-refresh-ms=""' in page and "Automatic reload is off" in page


def test_throughput_buckets_by_database_time(admin: PgqrsAdmin) -> None:
    queue = QueueFactory(name="jobs")
    now = timezone.now()
    ArchiveFactory(queue=queue, archived_at=now - dt.timedelta(seconds=30))
    ArchiveFactory(queue=queue, archived_at=now - dt.timedelta(seconds=90), outcome="dead")
    ArchiveFactory(queue=queue, archived_at=now - dt.timedelta(seconds=95), outcome="failed")
    ArchiveFactory(queue=QueueFactory(name="b"), archived_at=now - dt.timedelta(seconds=150))
    ArchiveFactory(queue=queue, archived_at=now - dt.timedelta(hours=2))
    series = admin.throughput(window=180, buckets=3)
    assert series.processed == [1, 2, 1]
    assert series.failures == [0, 2, 0]
    assert series.by_queue == {"jobs": 3, "b": 1}
    assert series.per_minute("jobs") == pytest.approx(1.0)
    assert series.per_minute() == pytest.approx(4 / 3)
    assert async_to_sync(admin.athroughput)(window=180, buckets=3) == series
    with pytest.raises(InvalidInput):
        admin.throughput(window=0)
    with pytest.raises(InvalidInput):
        admin.throughput(buckets=0)


# -- bounded queries ----------------------------------------------------------------------------


def queries_for(client: Client, url: str) -> int:
    with CaptureQueriesContext(pgqrs_connection()) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def populate(n: int) -> None:
    """``n`` queues, each with active and archived messages and a worker."""
    for i in range(n):
        queue = QueueFactory(name=f"q{i:03}")
        MessageFactory.create_batch(3, queue=queue)
        ArchiveFactory.create_batch(3, queue=queue, outcome="dead")
        worker = WorkerFactory()
        worker.queues.set([queue])
    Message.objects.filter(pk__in=Message.objects.values("pk")[:n]).update(
        claimed_at=timezone.now(), vt=F("vt") + dt.timedelta(minutes=5), consumer=worker
    )


PAGES = [Dashboard, Queue, Worker, Message, Archive]


def test_query_counts_do_not_grow_with_queues_and_rows(
    admin_client: Client, django_assert_max_num_queries: Any
) -> None:
    populate(1)
    admin_client.get(changelist(Dashboard))  # session and content types warm
    small = {m: queries_for(admin_client, changelist(m)) for m in PAGES}
    populate(30)
    large = {m: queries_for(admin_client, changelist(m)) for m in PAGES}
    assert large == small
    for model in PAGES:
        with django_assert_max_num_queries(15):
            admin_client.get(changelist(model))
    change_pages = [Queue.objects.last(), Message.objects.last(), Archive.objects.last()]
    for obj in change_pages:
        with django_assert_max_num_queries(10):
            admin_client.get(change(obj))


def test_counting_uses_the_estimate_on_big_tables() -> None:
    queue = QueueFactory(name="big")
    total = COUNT_LIMIT + 2_000
    with pgqrs_connection().cursor() as cursor:
        cursor.execute(
            "INSERT INTO pgqrs_archive (id, queue_id, payload, priority, enqueued_at, vt, read_ct,"
            " archived_at, outcome, worker_name, error)"
            " SELECT i, %s, jsonb_build_object('i', i), 0, now(), now(), 1, now(), 'succeeded',"
            " '', '' FROM generate_series(1, %s) AS i",
            [queue.pk, total],
        )
        cursor.execute("ANALYZE pgqrs_archive")
    everything = EstimatedCountPaginator(Archive.objects.all(), 100)
    with CaptureQueriesContext(pgqrs_connection()) as captured:
        assert everything.count == total
    assert not any("COUNT(" in q["sql"] for q in captured)
    filtered = EstimatedCountPaginator(Archive.objects.filter(outcome="succeeded"), 100)
    assert filtered.count == COUNT_LIMIT
    few = EstimatedCountPaginator(Archive.objects.filter(pk__lte=10), 100)
    assert few.count == 10


# -- escaping (issue 7: payloads rendered escaped) -----------------------------------------------


def test_payloads_tracebacks_and_names_are_escaped(admin_client: Client, admin: PgqrsAdmin) -> None:
    queue = admin.create_queue("xss")
    message = Producer("xss").enqueue({"x": XSS})
    Message.objects.filter(pk=message.pk).update(last_error=HTML_ERROR)
    archived = ArchiveFactory(
        queue=queue, payload={"x": XSS}, result={"r": XSS}, error=HTML_ERROR, outcome="dead"
    )
    worker = WorkerFactory(name=f"w{XSS}", hostname='h"><img src=x onerror=alert(3)>')
    worker.queues.set([queue])
    pages = [
        changelist(Message),
        change(message),
        changelist(Archive),
        change(archived),
        changelist(Worker),
        change(worker),
        changelist(Dashboard),
    ]
    for url in pages:
        html = admin_client.get(url).content.decode()
        assert XSS not in html, url
        assert "<img src=x" not in html and "<b>bad</b>" not in html, url
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, url
    detail = admin_client.get(change(archived)).content.decode()
    assert "&lt;b&gt;bad&lt;/b&gt;" in detail and '<pre class="pgqrs-traceback">' in detail
    assert '<pre class="pgqrs-json">' in detail
