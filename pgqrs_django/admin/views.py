"""The dashboard's pages, served inside the admin (their URLs are in urls.py).

Each page is a :class:`DashboardPage`: it has the admin's look and context, and the
``pgqrs.view_dashboard`` permission. Its numbers come from the API (:class:`PgqrsAdmin`),
never from queries of its own.
"""

from __future__ import annotations

import math
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseBase
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.views.generic import TemplateView

from .. import conf
from ..formatting import format_seconds
from .base import api
from .charts import chart


class DashboardPage(TemplateView):
    """A page under the dashboard, given its ModelAdmin by ``as_view(model_admin=...)`` (as
    Django's admin does for its own views).

    The permission is checked before the method is looked at, so a user without it gets 403
    whatever the method; login and staff status are checked by ``admin_site.admin_view``."""

    model_admin: admin.ModelAdmin[Any] | None = None
    title: Any = ""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        assert self.model_admin is not None, "as_view(model_admin=...) gives the ModelAdmin"
        if not self.model_admin.has_view_permission(request):
            raise PermissionDenied
        # {% url %} in the templates resolves in this admin site's namespace.
        request.current_app = self.model_admin.admin_site.name
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        assert self.model_admin is not None
        refresh = conf.get("ADMIN_REFRESH_INTERVAL")
        return {
            **self.model_admin.admin_site.each_context(self.request),
            "opts": self.model_admin.model._meta,
            "title": self.title,
            "refresh_seconds": refresh,
            "refresh_ms": None if refresh is None else math.ceil(float(refresh) * 1000),
            **super().get_context_data(**kwargs),
        }


class OverviewView(DashboardPage):
    """Every queue's counts, throughput over the last hour and day, the running workers."""

    template_name = "pgqrs_django/admin/dashboard.html"
    title = _("pgqrs dashboard")

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        operator = api()
        metrics = operator.all_queues_metrics()
        recent = operator.throughput(window=300, buckets=1)
        hour = operator.throughput(window=3600, buckets=60)
        day = operator.throughput(window=86400, buckets=96)
        stale = {w.pk for w in operator.stale_workers()}
        workers = operator.list_workers(running_only=True)
        now = timezone.now()
        return {
            **super().get_context_data(**kwargs),
            "queues": [
                {
                    "metrics": m,
                    "oldest": format_seconds(m.oldest_ready_age),
                    "per_minute": recent.per_minute(m.name),
                }
                for m in metrics
            ],
            "charts": [chart(hour, _("last hour")), chart(day, _("last day"))],
            "workers": [
                {
                    "worker": w,
                    "queues": ", ".join(sorted(q.name for q in w.queues.all())),
                    "age": format_seconds((now - w.heartbeat_at).total_seconds()),
                    "stale": w.pk in stale,
                }
                for w in workers
            ],
            "stale_timeout": format_seconds(float(conf.get("STALE_WORKER_TIMEOUT"))),
        }
