"""pgqrs_django.formatting: the table, record and JSON rendering the CLI (and the demo) use."""

from __future__ import annotations

import datetime as dt
import decimal
import io
import json

import pytest

from pgqrs_django.formatting import (
    Column,
    Progress,
    format_bytes,
    format_cell,
    format_seconds,
    render_json,
    render_record,
    render_table,
)
from tests.cli_support import assert_table


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (None, "-"),
        (0.25, "250ms"),
        (1.0, "1s"),
        (42.5, "42.5s"),
        (90, "1m 30s"),
        (3600, "1h"),
        (3 * 3600 + 20 * 60, "3h 20m"),
        (7 * 86400, "7d"),
        (2 * 86400 + 4 * 3600 + 5, "2d 4h"),
    ],
)
def test_format_seconds(seconds: float | None, shown: str) -> None:
    assert format_seconds(seconds) == shown


def test_format_bytes_and_cells() -> None:
    assert [format_bytes(n) for n in (None, 512, 8192, 1_234_567)] == [
        "-",
        "512 B",
        "8.2 kB",
        "1.2 MB",
    ]
    assert [format_cell(v) for v in (None, True, False, 1.50, 7, {"a": [1]})] == [
        "-",
        "yes",
        "no",
        "1.5",
        "7",
        '{"a":[1]}',
    ]
    when = dt.datetime(2025, 1, 31, 9, 15, 2, 123456, tzinfo=dt.UTC)
    assert format_cell(when) == "2025-01-31 09:15:02"  # TIME_ZONE is UTC in the tests
    assert format_cell("two\nlines\tand a tab") == "two\\nlines and a tab"
    assert format_cell("x" * 10, width=5) == "xxxx…"


def test_render_table_aligns_left_and_right_columns() -> None:
    rows = [{"name": "a", "n": 5, "age": 90.0}, {"name": "longer-name", "n": 12345, "age": None}]
    columns = [Column("name"), Column("n", "COUNT", "right"), Column("age", format=format_seconds)]
    text = render_table(rows, columns)
    assert text.splitlines() == [
        "NAME         COUNT  AGE",
        "a                5  1m 30s",
        "longer-name  12345  -",
    ]
    assert assert_table(text, ["NAME", "COUNT", "AGE"]) == [
        ["a", "5", "1m 30s"],
        ["longer-name", "12345", "-"],
    ]
    assert render_table([], ["a", "b"]) == "A  B"


def test_render_record_flat_and_nested() -> None:
    data = {"name": "jobs", "payload": {"to": "x"}, "workers": {"ready": 1, "stopped": 0}}
    assert render_record(data).splitlines() == [
        "name     jobs",
        'payload  {"to":"x"}',
        'workers  {"ready":1,"stopped":0}',
    ]
    assert render_record(data, nested=True).splitlines() == [
        "name             jobs",
        "payload.to       x",
        "workers.ready    1",
        "workers.stopped  0",
    ]
    assert render_record({}) == ""


def test_render_json_converts_times_decimals_and_sets() -> None:
    when = dt.datetime(2025, 1, 31, 9, 15, 2, tzinfo=dt.UTC)
    data = {"at": when, "took": dt.timedelta(seconds=1.5), "n": decimal.Decimal("2.5"), "s": (1,)}
    assert json.loads(render_json(data)) == {
        "at": "2025-01-31T09:15:02+00:00",
        "took": 1.5,
        "n": 2.5,
        "s": [1],
    }
    assert render_json({"é": "ü"}) == '{\n  "é": "ü"\n}'


def test_progress_rewrites_one_line() -> None:
    stream = io.StringIO()
    progress = Progress(stream, "sending", interval=0)
    progress.update(10, 0.5)
    progress.update(20)
    progress.close(20, 1.0)
    text = stream.getvalue()
    assert text.startswith("\rsending [###############...............]  50% 10")
    assert "\rsending: 20 (" in text
    assert text.endswith("100% 20\n") and text.count("\n") == 1
