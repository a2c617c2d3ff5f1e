"""Wake idle workers through LISTEN/NOTIFY.

pg_notify is transactional: a notification is delivered when (and only if) the transaction
that raised it commits, so a worker is never woken for an enqueue that rolls back. The payload
is the queue id; workers map it to the queues they serve. Channel: ``pgqrs``.

- INSERT (enqueue, batch enqueue, replay): one statement-level trigger that notifies once per
  distinct queue of the statement, via its transition table (a batch of 1,000 messages costs
  one notification, not 1,000). Delayed messages notify too, so a worker learns of a new
  earliest due time.
- A lease ending early (release, retry scheduled by fail(), reclaim of a dead worker's
  messages, move to a dead-letter queue): a row trigger whose WHEN clause is false for claims,
  so the claim statement queues no trigger events. Identical notifications in one
  transaction are folded into one by PostgreSQL.
- A queue resumed after a pause.
"""

from django.db import migrations

FORWARD = """
CREATE FUNCTION pgqrs_notify_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pgqrs', q.queue_id::text)
    FROM (SELECT DISTINCT queue_id FROM pgqrs_inserted) AS q;
    RETURN NULL;
END
$$;

CREATE TRIGGER pgqrs_message_notify_insert
AFTER INSERT ON pgqrs_message
REFERENCING NEW TABLE AS pgqrs_inserted
FOR EACH STATEMENT EXECUTE FUNCTION pgqrs_notify_inserted();

CREATE FUNCTION pgqrs_notify_unclaimed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pgqrs', NEW.queue_id::text);
    RETURN NULL;
END
$$;

CREATE FUNCTION pgqrs_notify_resumed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pgqrs', NEW.id::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER pgqrs_message_notify_unclaimed
AFTER UPDATE OF claimed_at ON pgqrs_message
FOR EACH ROW WHEN (OLD.claimed_at IS NOT NULL AND NEW.claimed_at IS NULL)
EXECUTE FUNCTION pgqrs_notify_unclaimed();

CREATE TRIGGER pgqrs_queue_notify_resumed
AFTER UPDATE OF paused ON pgqrs_queue
FOR EACH ROW WHEN (OLD.paused AND NOT NEW.paused)
EXECUTE FUNCTION pgqrs_notify_resumed();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS pgqrs_queue_notify_resumed ON pgqrs_queue;
DROP TRIGGER IF EXISTS pgqrs_message_notify_unclaimed ON pgqrs_message;
DROP TRIGGER IF EXISTS pgqrs_message_notify_insert ON pgqrs_message;
DROP FUNCTION IF EXISTS pgqrs_notify_resumed();
DROP FUNCTION IF EXISTS pgqrs_notify_unclaimed();
DROP FUNCTION IF EXISTS pgqrs_notify_inserted();
"""


class Migration(migrations.Migration):
    dependencies = [("pgqrs", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
