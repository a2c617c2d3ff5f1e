"""The dashboard's URLs, under the admin: ``/admin/pgqrs/dashboard/...``.

django-rq's pattern: the unmanaged ``Dashboard`` model gives the pages a place in the admin
index and their own permission, and :class:`~pgqrs_django.admin.admin.DashboardAdmin`
serves these patterns as its URLs. Each view is wrapped in ``admin_site.admin_view``
(login, staff status, CSRF, never cached); URL names live in the admin site's namespace,
e.g. ``reverse("admin:pgqrs_dashboard_changelist")`` for the overview (the name the admin
index links to).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.urls import URLPattern, path

from .views import DashboardPage, OverviewView


def dashboard_urls(model_admin: admin.ModelAdmin[Any]) -> list[URLPattern]:
    """The URL patterns of the dashboard's pages, for ``DashboardAdmin.get_urls()``."""
    opts = model_admin.model._meta
    prefix = f"{opts.app_label}_{opts.model_name}"

    def page(view: type[DashboardPage]) -> Any:
        return model_admin.admin_site.admin_view(view.as_view(model_admin=model_admin))

    return [
        path("", page(OverviewView), name=f"{prefix}_changelist"),
    ]
