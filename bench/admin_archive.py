"""How fast the admin's archive list renders with 1,000,000 archived messages.

Fills a scratch database with ``--rows`` archive rows (one INSERT ... SELECT over
generate_series: three queues, four outcomes, 30 days of history), then renders archive
changelist pages through Django's test client as a logged-in superuser and prints the median
of ``--repeat`` renders (after one warm-up) for each page: unfiltered, filtered, searched,
drilled down by date.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \
        .venv/bin/python -m bench.admin_archive [--rows N] [--repeat N]

Target: every page under one second.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from bench.common import database_url, drop_database, fresh_database

#: The scratch database, dropped at the end.
DATABASE = "pgqrs_bench_admin"

FILL = """
INSERT INTO pgqrs_archive
    (id, queue_id, payload, priority, enqueued_at, vt, read_ct, dequeued_at, dedupe_key,
     archived_at, outcome, duration, worker_name, error, result)
SELECT i,
       (%(queues)s::bigint[])[1 + i %% 3],
       jsonb_build_object('order', i, 'email', 'user' || i || '@example.com', 'items', i %% 7),
       0,
       t - interval '2 seconds', t - interval '1 second', 1 + i %% 3, t - interval '1 second',
       NULL, t,
       (ARRAY['succeeded', 'succeeded', 'succeeded', 'failed', 'dead', 'cancelled'])[1 + i %% 6],
       0.01 * (i %% 100), 'bench-worker',
       CASE WHEN i %% 6 IN (3, 4) THEN 'ValueError: order ' || i ELSE '' END,
       NULL
FROM generate_series(1, %(rows)s) AS i,
     LATERAL (SELECT now() - make_interval(secs => (%(rows)s - i) * %(spacing)s)) AS s(t)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--keep", action="store_true", help="keep the filled database and reuse it next time"
    )
    parser.add_argument(
        "--queries", action="store_true", help="also print each page's SQL with its time"
    )
    args = parser.parse_args()
    url = database_url(DATABASE) if args.keep and exists(DATABASE) else fresh_database(DATABASE)
    # The test suite's settings: they have the admin, sessions and the admin URLs.
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    import django
    from django.core.management import call_command
    from django.db import connections

    django.setup()
    call_command("migrate", verbosity=0)
    try:
        run(args.rows, args.repeat, args.queries)
    finally:
        connections.close_all()
        if not args.keep:
            drop_database(DATABASE)


def exists(name: str) -> bool:
    import psycopg

    with psycopg.connect(database_url("postgres")) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
    return found is not None


def run(rows: int, repeat: int, show_queries: bool) -> None:
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from pgqrs_django import PgqrsAdmin
    from pgqrs_django.models import Archive

    # No setup_test_environment(): its template instrumentation would copy every context
    # and inflate the timings; the client still runs the whole middleware stack.
    admin = PgqrsAdmin()
    if Archive.objects.count() != rows:
        queues = [admin.create_queue(name) for name in ("emails", "thumbnails", "reports")]
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(
                FILL,
                {"queues": [q.pk for q in queues], "rows": rows, "spacing": 30 * 86400 / rows},
            )
            cursor.execute("VACUUM ANALYZE pgqrs_archive")
        print(f"filled {rows:,} archive rows in {time.perf_counter() - started:.1f} s")
        User.objects.create_superuser("bench", "bench@example.com", "bench")
    by_name = {q.name: q for q in admin.list_queues()}
    newest = Archive.objects.order_by("-id").first()
    assert newest is not None
    year, month = newest.archived_at.year, newest.archived_at.month
    rare = f"user{rows - 5_000}@example.com"  # within the newest SEARCH_WINDOW rows
    pages = {
        "unfiltered": "",
        "outcome=dead": "?outcome__exact=dead",
        "queue=reports": f"?queue__id__exact={by_name['reports'].pk}",
        "queue + outcome": f"?queue__id__exact={by_name['emails'].pk}&outcome__exact=failed",
        "search id": f"?q={rows // 3}",
        "search common text": "?q=example.com",
        f"search rare text ({rare})": f"?q={rare}",
        "date: this month": f"?archived_at__year={year}&archived_at__month={month}",
        "page 50": "?p=50",
    }
    client = Client()
    client.force_login(User.objects.get(username="bench"))
    print(f"archive changelist, median of {repeat} renders (after one warm-up):")
    for label, query in pages.items():
        url = "/admin/pgqrs/archive/" + query
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        shown = response.content.count(b'name="_selected_action"')
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            client.get(url)
            times.append(time.perf_counter() - started)
        median = statistics.median(times)
        verdict = "ok" if median < 1 else "OVER 1 s"
        print(f"  {label:<45} {median * 1000:7.0f} ms  ({shown} rows shown)  {verdict}")
        if show_queries:
            with CaptureQueriesContext(connection) as captured:
                client.get(url)
            for query in captured.captured_queries:
                print(f"      {float(query['time']) * 1000:7.1f} ms  {query['sql'][:150]}")


if __name__ == "__main__":
    main()
