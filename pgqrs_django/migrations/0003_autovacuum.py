"""Autovacuum settings for the message table, which churns like no other table.

Every message is inserted, updated at each claim (a claim changes ``vt``, which the claim
index holds, so the update is never HOT) and deleted when archived: a busy queue leaves dead
tuples behind at the rate it processes messages. PostgreSQL's defaults vacuum a table once
20 % of it is dead, which for a queue that is nearly empty most of the time means "rarely",
while the claim index fills with dead entries that every claim has to step over.

- ``autovacuum_vacuum_scale_factor = 0.01`` and ``autovacuum_vacuum_threshold = 1000``:
  vacuum once 1,000 rows plus 1 % of the table are dead.
- ``autovacuum_vacuum_insert_scale_factor = 0.05`` (PostgreSQL 13+): keep the visibility map
  fresh during bursts of enqueues.
- ``autovacuum_analyze_scale_factor = 0.02``: statistics follow a backlog that grows and
  drains quickly.
- ``autovacuum_vacuum_cost_delay = 1`` (ms): vacuum this small, hot table without the
  default 2 ms throttling.
- ``fillfactor = 80``: leave room on each page so a claim's new row version can often stay
  on the same page.

See docs/operations.md (and ``make soak``, which measures dead tuples and table size).
"""

from django.db import migrations

FORWARD = """
ALTER TABLE pgqrs_message SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 1,
    fillfactor = 80
);
"""

BACKWARD = """
ALTER TABLE pgqrs_message RESET (
    autovacuum_vacuum_scale_factor,
    autovacuum_vacuum_threshold,
    autovacuum_vacuum_insert_scale_factor,
    autovacuum_analyze_scale_factor,
    autovacuum_vacuum_cost_delay,
    fillfactor
);
"""


class Migration(migrations.Migration):
    dependencies = [("pgqrs", "0002_notify_trigger")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
