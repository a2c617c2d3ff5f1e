"""Counting without scanning: the paginator of every pgqrs changelist."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet

#: Below this many rows (by the planner's estimate) a changelist counts exactly.
EXACT_COUNT_BELOW = 10_000
#: A filtered changelist counts at most this many matches (the page shows "10000+" pages).
COUNT_LIMIT = 10_000


class EstimatedCountPaginator(Paginator):
    """A paginator that never counts a big table row by row.

    Unfiltered, it takes the planner's row estimate (``pg_class.reltuples``) when that is
    large; filtered or searched, it counts at most ``COUNT_LIMIT`` matches. Either way the
    count costs a bounded amount of work, whatever the table holds."""

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not isinstance(queryset, QuerySet):
            return super().count
        if not queryset.query.where:
            estimate = estimated_rows(queryset)
            if estimate >= EXACT_COUNT_BELOW:
                return estimate
            return queryset.count()
        return queryset.order_by()[:COUNT_LIMIT].count()


def estimated_rows(queryset: QuerySet[Any]) -> int:
    """The planner's estimate of the rows in the queryset's table (-1: never analysed)."""
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
            [queryset.model._meta.db_table],
        )
        row = cursor.fetchone()
    return int(row[0]) if row and row[0] is not None else -1
