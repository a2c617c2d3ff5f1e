"""The Django admin for pgqrs: changelists for queues, workers, messages and the archive,
operator actions, and a dashboard (see docs/admin.md).

Every change goes through :class:`~pgqrs_django.admin_api.PgqrsAdmin`, never a direct write:
change pages are read-only, and the actions call the API. Lists stay fast on big tables:
related rows come in the same query, and no page counts a large table exactly.

- ``admin.py`` (queues, workers, the dashboard) and ``messages.py`` (active messages, the
  archive): the ModelAdmin registrations, imported here so that Django's admin
  autodiscovery registers them;
- ``base.py``: what they share (read-only pages, the confirmation of destructive actions);
- ``paginator.py``: counting without scanning; ``drilldown.py``: the archive's calendar;
- ``views.py`` and ``urls.py``: the dashboard's pages and their URLs; ``charts.py``: its
  charts. Templates are in ``templates/pgqrs_django/admin/``.
"""

from __future__ import annotations

from .admin import DashboardAdmin, QueueAdmin, WorkerAdmin
from .messages import ArchiveAdmin, MessageAdmin
from .paginator import COUNT_LIMIT, EstimatedCountPaginator

__all__ = [
    "COUNT_LIMIT",
    "ArchiveAdmin",
    "DashboardAdmin",
    "EstimatedCountPaginator",
    "MessageAdmin",
    "QueueAdmin",
    "WorkerAdmin",
]
