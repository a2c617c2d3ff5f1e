"""The archive's date drill-down (years, months, days) without scanning the table."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.http import HttpRequest
from django.utils import formats, timezone
from django.utils.text import capfirst
from django.utils.translation import gettext


def calendar(changelist: Any, request: HttpRequest) -> dict[str, Any] | None:
    """The choices for ``admin/date_hierarchy.html`` at the level the request is at.

    Django's own date hierarchy reads the distinct years, months or days present, a full scan
    of a big archive on every page; this one offers the calendar instead (from the year of
    the oldest row, found through the primary key index, to today)."""
    field = changelist.date_hierarchy
    keys = {part: f"{field}__{part}" for part in ("year", "month", "day")}
    try:
        year, month, day = (
            int(request.GET[key]) if key in request.GET else None for key in keys.values()
        )
    except ValueError:
        return None

    def link(filters: dict[str, int]) -> str:
        return str(changelist.get_query_string(filters, [f"{field}__"]))

    def title(date: dt.date, format_name: str) -> str:
        return capfirst(formats.date_format(date, format_name))

    today = timezone.localdate()
    if year and month and day:
        chosen = dt.date(year, month, day)
        return {
            "back": {
                "link": link({keys["year"]: year, keys["month"]: month}),
                "title": title(chosen, "YEAR_MONTH_FORMAT"),
            },
            "choices": [{"title": title(chosen, "MONTH_DAY_FORMAT")}],
        }
    if year and month:
        last = (dt.date(year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)).day
        days = [dt.date(year, month, d) for d in range(1, last + 1)]
        return {
            "back": {"link": link({keys["year"]: year}), "title": str(year)},
            "choices": [
                {
                    "link": link({keys["year"]: year, keys["month"]: month, keys["day"]: d.day}),
                    "title": title(d, "MONTH_DAY_FORMAT"),
                }
                for d in days
                if d <= today
            ],
        }
    if year:
        months = [dt.date(year, m, 1) for m in range(1, 13)]
        return {
            # Django's own message, so Django's translations apply.
            "back": {"link": link({}), "title": gettext("All dates")},
            "choices": [
                {
                    "link": link({keys["year"]: year, keys["month"]: m.month}),
                    "title": title(m, "YEAR_MONTH_FORMAT"),
                }
                for m in months
                if m <= today
            ],
        }
    oldest = changelist.root_queryset.order_by("pk").values_list(field, flat=True).first()
    first = timezone.localtime(oldest).year if oldest is not None else today.year
    return {
        "back": None,
        "choices": [
            {"link": link({keys["year"]: y}), "title": str(y)}
            for y in range(min(first, today.year), today.year + 1)
        ],
    }
