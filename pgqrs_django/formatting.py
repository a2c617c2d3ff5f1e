"""Rendering for people and for programs: aligned tables, key/value records, JSON, progress.

Used by ``manage.py pgqrs`` and reusable by anything that prints pgqrs data (the demo prints
its metrics tables with it)::

    from pgqrs_django.formatting import render_table, metrics_row, METRICS_COLUMNS
    print(render_table([metrics_row(m) for m in admin.all_queues_metrics()], METRICS_COLUMNS))

The ``*_row`` functions turn API objects into plain dicts with stable keys; they are what
``--format json`` prints, and what the tables are drawn from.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import json
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import IO, Any

from django.utils import timezone

from .admin_api import QueueMetrics
from .models import Archive, Message, Queue, Worker

# -- plain values ---------------------------------------------------------------------------


def to_jsonable(value: Any) -> Any:
    """``value`` with datetimes as ISO 8601 strings, timedeltas as seconds, Decimals as
    numbers, tuples and sets as lists; everything else JSON already knows stays as is."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    return value


def render_json(data: Any) -> str:
    """``data`` as indented JSON (UTF-8 characters kept, key order kept)."""
    return json.dumps(to_jsonable(data), indent=2, ensure_ascii=False)


def format_seconds(value: float | None) -> str:
    """A duration for people: ``850ms``, ``42.5s``, ``12m 5s``, ``3h 20m``, ``2d 4h``."""
    if value is None:
        return "-"
    if not math.isfinite(value):
        return str(value)
    if abs(value) < 1:
        return f"{value * 1000:.0f}ms"
    if abs(value) < 60:
        return f"{value:.1f}s".replace(".0s", "s")
    total = int(value)
    for unit, size, sub_unit, sub_size in (
        ("d", 86400, "h", 3600),
        ("h", 3600, "m", 60),
        ("m", 60, "s", 1),
    ):
        if total >= size:
            major, rest = divmod(total, size)
            minor = rest // sub_size
            return f"{major}{unit} {minor}{sub_unit}" if minor else f"{major}{unit}"
    return f"{total}s"  # pragma: no cover (negative durations)


def format_bytes(value: int | None) -> str:
    """A size for people: ``512 B``, ``8.0 kB``, ``1.2 MB``."""
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(size) < 1000 or unit == "TB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{value} B"  # pragma: no cover


def format_cell(value: Any, *, width: int | None = None) -> str:
    """One value as table text: ``-`` for None, yes/no, compact numbers, local times without
    microseconds, compact JSON for payloads; cut to ``width`` characters with an ellipsis."""
    if value is None:
        text = "-"
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, float):
        text = f"{value:g}"
    elif isinstance(value, dt.datetime):
        shown = timezone.localtime(value) if timezone.is_aware(value) else value
        text = shown.strftime("%Y-%m-%d %H:%M:%S")
    elif isinstance(value, dict | list):
        text = json.dumps(to_jsonable(value), ensure_ascii=False, separators=(",", ":"))
    else:
        text = str(value)
    # A cell is one line, whatever the data holds.
    text = text.replace("\r", "\\r").replace("\n", "\\n").replace("\t", " ")
    if width is not None and len(text) > width:
        text = text[: max(width - 1, 0)] + "…"
    return text


# -- tables -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Column:
    """A table column: the row key it shows, its header, alignment, optional formatter and
    maximum width (longer cells are cut with an ellipsis)."""

    key: str
    header: str = ""
    align: str = "left"
    format: Callable[[Any], str] | None = None
    width: int | None = None

    @property
    def title(self) -> str:
        return self.header or self.key.upper()

    def cell(self, row: Mapping[str, Any]) -> str:
        value = row.get(self.key)
        text = self.format(value) if self.format is not None else format_cell(value)
        return format_cell(text, width=self.width)


def _columns(columns: Sequence[Column | str]) -> list[Column]:
    return [c if isinstance(c, Column) else Column(c) for c in columns]


def render_table(rows: Iterable[Mapping[str, Any]], columns: Sequence[Column | str]) -> str:
    """Rows as an aligned table with a header line; columns are separated by two spaces."""
    cols = _columns(columns)
    grid = [[c.title for c in cols]] + [[c.cell(row) for c in cols] for row in rows]
    widths = [max(len(line[i]) for line in grid) for i in range(len(cols))]
    lines = []
    for line in grid:
        cells = [
            text.rjust(width) if col.align == "right" else text.ljust(width)
            for text, width, col in zip(line, widths, cols, strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def render_record(data: Mapping[str, Any], *, nested: bool = False) -> str:
    """One object as aligned ``key  value`` lines. Dict values are shown as compact JSON, or
    with ``nested`` as one ``parent.key`` line per item (for summaries like stats)."""
    flat: list[tuple[str, str]] = []

    def walk(mapping: Mapping[str, Any], path: str) -> None:
        for key, value in mapping.items():
            name = f"{path}{key}"
            if nested and isinstance(value, Mapping) and value:
                walk(value, f"{name}.")
            else:
                flat.append((name, format_cell(value)))

    walk(data, "")
    if not flat:
        return ""
    width = max(len(name) for name, _ in flat)
    return "\n".join(f"{name.ljust(width)}  {value}".rstrip() for name, value in flat)


# -- pgqrs objects as rows (stable keys: they are the JSON output of the CLI) ---------------


def queue_row(queue: Queue) -> dict[str, Any]:
    dlq = queue.dead_letter_queue
    return {
        "name": queue.name,
        "visibility_timeout": queue.visibility_timeout,
        "max_attempts": queue.max_attempts,
        "paused": queue.paused,
        "dead_letter_queue": dlq.name if dlq is not None else None,
        "created_at": queue.created_at,
    }


QUEUE_COLUMNS = [
    Column("name"),
    Column("visibility_timeout", "VISIBILITY", "right", format_seconds),
    Column("max_attempts", "MAX_ATTEMPTS", "right"),
    Column("paused"),
    Column("dead_letter_queue", "DEAD_LETTER_QUEUE"),
    Column("created_at", "CREATED_AT"),
]


def _message_fields(row: Message | Archive, queue: str | None) -> dict[str, Any]:
    """The fields active and archived messages share."""
    return {
        "id": row.id,
        "queue": queue if queue is not None else row.queue.name,
        "payload": row.payload,
        "priority": row.priority,
        "enqueued_at": row.enqueued_at,
        "visible_at": row.vt,
        "read_ct": row.read_ct,
        "dequeued_at": row.dequeued_at,
    }


def message_row(message: Message, queue: str | None = None) -> dict[str, Any]:
    """An active message; ``queue`` saves a lookup when the caller knows the name."""
    consumer = message.consumer if message.consumer_id is not None else None
    return {
        **_message_fields(message, queue),
        "claimed_at": message.claimed_at,
        "consumer": consumer.name if consumer is not None else None,
        "dedupe_key": message.dedupe_key,
        "last_error": message.last_error or None,
    }


MESSAGE_COLUMNS = [
    Column("id", align="right"),
    Column("priority", align="right"),
    Column("read_ct", "READ_CT", "right"),
    Column("visible_at", "VISIBLE_AT"),
    Column("enqueued_at", "ENQUEUED_AT"),
    Column("payload", width=60),
]


def archive_row(row: Archive, queue: str | None = None) -> dict[str, Any]:
    """An archived message."""
    return {
        **_message_fields(row, queue),
        "dedupe_key": row.dedupe_key,
        "archived_at": row.archived_at,
        "outcome": row.outcome,
        "duration": row.duration,
        "worker": row.worker_name or None,
        "error": row.error or None,
        "result": row.result,
    }


ARCHIVE_COLUMNS = [
    Column("id", align="right"),
    Column("outcome"),
    Column("read_ct", "READ_CT", "right"),
    Column("duration", align="right", format=format_seconds),
    Column("archived_at", "ARCHIVED_AT"),
    Column("worker", width=30),
    Column("payload", width=50),
]


def worker_row(worker: Worker, *, stale: bool = False) -> dict[str, Any]:
    """A worker; ``stale`` says whether its heartbeat is older than the stale timeout."""
    return {
        "id": worker.id,
        "name": worker.name,
        "hostname": worker.hostname,
        "pid": worker.pid,
        "status": worker.status,
        "stale": stale,
        "shutdown_requested": worker.shutdown_requested,
        "queues": sorted(q.name for q in worker.queues.all()),
        "started_at": worker.started_at,
        "heartbeat_at": worker.heartbeat_at,
        "stopped_at": worker.stopped_at,
    }


WORKER_COLUMNS = [
    Column("id", align="right"),
    Column("name", width=40),
    Column("hostname", width=30),
    Column("pid", align="right"),
    Column("status"),
    Column("stale"),
    Column("queues", format=lambda names: ",".join(names) or "-", width=40),
    Column("heartbeat_at", "HEARTBEAT_AT"),
]


def metrics_row(metrics: QueueMetrics) -> dict[str, Any]:
    return metrics.as_dict()


METRICS_COLUMNS = [
    Column("name", "QUEUE"),
    Column("ready", align="right"),
    Column("delayed", align="right"),
    Column("in_flight", "IN_FLIGHT", align="right"),
    Column("archived", align="right"),
    Column("succeeded", align="right"),
    Column("failed", align="right"),
    Column("dead", align="right"),
    Column("cancelled", align="right"),
    Column("oldest_ready_age", "OLDEST_READY", "right", format_seconds),
    Column("workers", align="right"),
    Column("paused"),
]


# -- progress -------------------------------------------------------------------------------


class Progress:
    """A one-line progress display rewritten in place on a terminal (``\\r``).

    ``update(done, fraction)`` redraws at most every ``interval`` seconds; ``close()`` ends
    the line. Callers create it only when the stream is a terminal.
    """

    def __init__(self, stream: IO[str], label: str, *, interval: float = 0.1) -> None:
        self.stream = stream
        self.label = label
        self.interval = interval
        self.started = time.monotonic()
        self._drawn = 0.0
        self._width = 0

    def update(self, done: int, fraction: float | None = None, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._drawn < self.interval:
            return
        self._drawn = now
        elapsed = max(now - self.started, 1e-9)
        text = f"{self.label}: {done:,} ({done / elapsed:,.0f}/s)"
        if fraction is not None:
            fraction = min(max(fraction, 0.0), 1.0)
            filled = int(fraction * 30)
            text = f"{self.label} [{'#' * filled}{'.' * (30 - filled)}] {fraction:4.0%} {done:,}"
        self.stream.write("\r" + text.ljust(self._width))
        self._width = len(text)
        self.stream.flush()

    def close(self, done: int, fraction: float | None = None) -> None:
        self.update(done, fraction, force=True)
        self.stream.write("\n")
        self.stream.flush()
