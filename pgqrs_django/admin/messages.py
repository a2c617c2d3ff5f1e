"""Active messages and the archive: the two lists whose rows carry a payload, searched by
message id or payload text and shown pretty-printed on the row's page."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from django.contrib import admin
from django.db.models import Case, CharField, QuerySet, Subquery, Value, When
from django.db.models.functions import Coalesce, Now
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from ..exceptions import PgqrsError
from ..formatting import format_cell, format_seconds, render_json
from ..models import Archive, Message
from .base import ApiOnlyAdmin, api
from .drilldown import calendar

#: Payload text search looks at this many of the newest rows (after the filters).
SEARCH_WINDOW = 100_000
#: Characters of a payload or an error shown in a list column.
PREVIEW_CHARS = 80


def pretty_json(value: Any) -> SafeString:
    """A JSON value indented in a <pre>, escaped."""
    return format_html('<pre class="pgqrs-json">{}</pre>', render_json(value))


def pretty_text(value: str) -> SafeString:
    """Error text or a traceback in a <pre>, escaped ("-" when empty)."""
    if not value:
        return format_html("{}", "-")
    return format_html('<pre class="pgqrs-traceback">{}</pre>', value)


def preview(value: Any) -> str:
    """A payload as compact one-line JSON, cut to ``PREVIEW_CHARS`` (escaped by the admin
    like any str)."""
    return format_cell(value, width=PREVIEW_CHARS)


def selected_by_queue(rows: Iterable[Message | Archive]) -> dict[str, list[int]]:
    """Selected message ids grouped by queue name (the API acts on one queue at a time)."""
    by_queue: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        by_queue[row.queue.name].append(row.pk)
    return by_queue


class PayloadAdmin(ApiOnlyAdmin):
    """What active and archived messages share: search by id or payload text, and the
    payload shown on one line in lists and pretty-printed on the row's page."""

    search_fields = ("payload",)
    search_help_text = _("A message id, or text found in the payload.")

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        """A whole number finds the message with that id (primary key lookup); other text is
        looked for in the payloads of the newest ``SEARCH_WINDOW`` rows the filters leave,
        so a search reads a bounded number of rows however big the table is."""
        term = search_term.strip()
        if not term:
            return queryset, False
        if term.isdigit():
            return queryset.filter(pk=int(term)), False
        # The id of the SEARCH_WINDOW-th newest row, found by walking the primary key index.
        oldest = queryset.order_by("-pk").values("pk")[SEARCH_WINDOW - 1 : SEARCH_WINDOW]
        window = queryset.filter(pk__gte=Coalesce(Subquery(oldest), Value(0)))
        return window.filter(payload__icontains=term), False

    @admin.display(description=_("payload"))
    def payload_preview(self, row: Message | Archive) -> str:
        return preview(row.payload)

    @admin.display(description=_("payload"))
    def payload_pretty(self, row: Message | Archive) -> SafeString:
        return pretty_json(row.payload)


# -- messages ----------------------------------------------------------------------------------

#: A message's state, as MessageAdmin.get_queryset computes it, and its label.
STATES = {"ready": _("ready"), "delayed": _("delayed"), "in_flight": _("in flight")}


class StateFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return list(STATES.items())

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value == "ready":
            return queryset.ready()  # type: ignore[attr-defined]
        if value == "delayed":
            return queryset.delayed()  # type: ignore[attr-defined]
        if value == "in_flight":
            return queryset.in_flight()  # type: ignore[attr-defined]
        return queryset


@admin.register(Message)
class MessageAdmin(PayloadAdmin):
    list_display = (
        "id",
        "queue",
        "state",
        "priority",
        "read_ct",
        "enqueued_at",
        "vt",
        "consumer",
        "payload_preview",
    )
    list_filter = ("queue", StateFilter)
    list_select_related = ("queue", "consumer")
    readonly_fields = ("state", "payload_pretty", "last_error_pretty")
    replaced = ("payload", "last_error")
    ordering = ("-id",)
    actions = ("release", "delete_selected")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Message]:
        # By the database clock, like the API's ready()/delayed()/in_flight().
        state = Case(
            When(vt__lte=Now(), then=Value("ready")),
            When(claimed_at__isnull=True, then=Value("delayed")),
            default=Value("in_flight"),
            output_field=CharField(),
        )
        return super().get_queryset(request).annotate(current_state=state)

    @admin.display(description=_("state"))
    def state(self, message: Message) -> str:
        return str(STATES.get(getattr(message, "current_state", ""), "-"))

    @admin.display(description=_("last error"))
    def last_error_pretty(self, message: Message) -> SafeString:
        return pretty_text(message.last_error)

    @admin.action(description=_("Release selected in-flight messages"), permissions=["change"])
    def release(self, request: HttpRequest, queryset: QuerySet[Message]) -> None:
        released = sum(
            api().release_messages(queue, ids)
            for queue, ids in selected_by_queue(queryset.select_related("queue")).items()
        )
        done = ngettext("%(count)d message released.", "%(count)d messages released.", released)
        self.report(request, done % {"count": released}, [])

    def delete_model(self, request: HttpRequest, obj: Message) -> None:
        api().delete_messages(obj.queue.name, [obj.pk])

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Message]) -> None:
        for queue, ids in selected_by_queue(queryset.select_related("queue")).items():
            api().delete_messages(queue, ids)


# -- archive -----------------------------------------------------------------------------------


@admin.register(Archive)
class ArchiveAdmin(PayloadAdmin):
    list_display = (
        "id",
        "queue",
        "outcome",
        "read_ct",
        "enqueued_at",
        "archived_at",
        "duration_shown",
        "worker_name",
        "payload_preview",
        "error_line",
    )
    list_filter = ("queue", "outcome")
    list_select_related = ("queue",)
    date_hierarchy = "archived_at"
    change_list_template = "pgqrs_django/admin/archive_change_list.html"
    readonly_fields = ("payload_pretty", "result_pretty", "error_pretty")
    replaced = ("payload", "result", "error")
    # The primary key index serves this order on any number of rows.
    ordering = ("-id",)
    actions = ("retry",)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None)
        if isinstance(response, TemplateResponse) and context and "cl" in context:
            context["calendar"] = calendar(context["cl"], request)
        return response

    @admin.display(description=_("duration"))
    def duration_shown(self, row: Archive) -> str:
        return format_seconds(row.duration)

    @admin.display(description=_("error"))
    def error_line(self, row: Archive) -> str:
        lines = row.error.strip().splitlines()
        return lines[-1][:PREVIEW_CHARS] if lines else ""

    @admin.display(description=_("result"))
    def result_pretty(self, row: Archive) -> SafeString:
        return pretty_json(row.result)

    @admin.display(description=_("error"))
    def error_pretty(self, row: Archive) -> SafeString:
        return pretty_text(row.error)

    @admin.action(description=_("Retry selected dead or failed messages"), permissions=["change"])
    def retry(self, request: HttpRequest, queryset: QuerySet[Archive]) -> None:
        done, errors = 0, []
        rows = queryset.select_related("queue").filter(
            outcome__in=[Archive.Outcome.DEAD, Archive.Outcome.FAILED]
        )
        skipped = queryset.count() - rows.count()
        for row in rows:
            try:
                api().replay_dead(row.queue.name, row.pk)
                done += 1
            except PgqrsError as exc:
                errors.append(str(exc))
        if skipped:
            errors.append(
                ngettext(
                    "%(count)d selected message was neither dead nor failed.",
                    "%(count)d selected messages were neither dead nor failed.",
                    skipped,
                )
                % {"count": skipped}
            )
        done_message = ngettext(
            "%(count)d message put back in its queue.",
            "%(count)d messages put back in their queues.",
            done,
        )
        self.report(request, done_message % {"count": done}, errors)
