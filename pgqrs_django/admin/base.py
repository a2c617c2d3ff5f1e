"""What every pgqrs ModelAdmin shares: read-only pages whose rows change only through
actions that call the API, and the confirmation step of destructive actions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.functional import Promise
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext

from ..admin_api import PgqrsAdmin
from .paginator import COUNT_LIMIT, EstimatedCountPaginator


def api() -> PgqrsAdmin:
    """The operator API every action and page goes through (on the pgqrs database)."""
    return PgqrsAdmin()


def confirm_or_run(
    modeladmin: admin.ModelAdmin[Any],
    request: HttpRequest,
    queryset: QuerySet[Any],
    *,
    action: str,
    title: str | Promise,
    consequence: str | Promise,
    run: Callable[[QuerySet[Any]], None],
) -> HttpResponse | None:
    """Destructive actions: the first POST shows a confirmation page listing the selected
    rows; the POST from that page (with ``confirm=yes``) runs the action."""
    if request.POST.get("confirm") == "yes":
        run(queryset)
        return None
    opts = modeladmin.model._meta
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "consequence": consequence,
        "objects": list(queryset[:COUNT_LIMIT]),
        "action": action,
        "opts": opts,
        "action_checkbox_name": ACTION_CHECKBOX_NAME,
        "selected": request.POST.getlist(ACTION_CHECKBOX_NAME),
        "select_across": request.POST.get("select_across", "0"),
    }
    return TemplateResponse(request, "pgqrs_django/admin/confirm_action.html", context)


class ApiOnlyAdmin(admin.ModelAdmin):
    """Read-only change pages: rows change only through actions that call the API.

    ``change`` permission is what the actions need; a change page is a view page."""

    show_full_result_count = False
    # Facet counts are one COUNT per filter choice over the whole list: never on big tables.
    show_facets = admin.ShowFacets.NEVER
    paginator = EstimatedCountPaginator
    list_per_page = 100

    #: Model fields shown through a display method instead (pretty-printed).
    replaced: tuple[str, ...] = ()

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None and super().has_change_permission(request)

    def action_checkbox(self, obj: Any) -> SafeString:
        """The row's checkbox as Django draws it, without rendering a widget template per
        row (a quarter of a list page's rendering time)."""
        return format_html(
            '<input type="checkbox" name="{}" value="{}" class="action-select" aria-label="{}">',
            ACTION_CHECKBOX_NAME,
            obj.pk,
            # Django's own message, so Django's translations apply.
            format_html(gettext("Select this object for an action - {}"), str(obj)),
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [*self.fields_shown, *self.readonly_fields]

    @property
    def fields_shown(self) -> list[str]:
        return [f.name for f in self.model._meta.concrete_fields if f.name not in self.replaced]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:  # type: ignore[override]
        return self.get_readonly_fields(request, obj)

    def report(self, request: HttpRequest, done: str, errors: list[str]) -> None:
        """Show what an action did (``done``, already counted with ngettext) and each
        refusal the API gave."""
        self.message_user(request, done, messages.SUCCESS)
        for error in errors:
            self.message_user(request, error, messages.WARNING)
