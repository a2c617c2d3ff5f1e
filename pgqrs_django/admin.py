"""The Django admin for pgqrs: changelists for queues, workers, messages and the archive,
operator actions, and a dashboard (see docs/admin.md).

Every change goes through :class:`~pgqrs_django.admin_api.PgqrsAdmin`, never a direct write:
change pages are read-only, and the actions call the API. Lists stay fast on big tables:
related rows come in the same query, and no page counts a large table exactly.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from functools import cached_property
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import (
    BooleanField,
    Case,
    CharField,
    DurationField,
    ExpressionWrapper,
    F,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Now
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import formats, timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.text import capfirst
from django.utils.translation import gettext

from . import conf
from .admin_api import PgqrsAdmin, Throughput
from .exceptions import PgqrsError
from .formatting import format_cell, format_seconds, render_json
from .models import Archive, Dashboard, Message, Queue, Worker

#: Below this many rows (by the planner's estimate) a changelist counts exactly.
EXACT_COUNT_BELOW = 10_000
#: A filtered changelist counts at most this many matches (the page shows "10000+" pages).
COUNT_LIMIT = 10_000
#: Payload text search looks at this many of the newest rows (after the filters).
SEARCH_WINDOW = 100_000
#: Characters of a payload shown in a list column.
PREVIEW_CHARS = 80


def api() -> PgqrsAdmin:
    return PgqrsAdmin()


# -- counting without scanning ---------------------------------------------------------------


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
            estimate = _estimated_rows(queryset)
            if estimate >= EXACT_COUNT_BELOW:
                return estimate
            return queryset.count()
        return queryset.order_by()[:COUNT_LIMIT].count()


def _estimated_rows(queryset: QuerySet[Any]) -> int:
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
            [queryset.model._meta.db_table],
        )
        row = cursor.fetchone()
    # -1: never analysed.
    return int(row[0]) if row and row[0] is not None else -1


# -- shared display helpers ------------------------------------------------------------------


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


def _selected_by_queue(rows: Iterable[Message | Archive]) -> dict[str, list[int]]:
    by_queue: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        by_queue[row.queue.name].append(row.pk)
    return by_queue


def confirm_or_run(
    modeladmin: admin.ModelAdmin[Any],
    request: HttpRequest,
    queryset: QuerySet[Any],
    *,
    action: str,
    title: str,
    consequence: str,
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
            format_html(gettext("Select this object for an action - {}"), str(obj)),
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [*self.fields_shown, *self.readonly_fields]

    @property
    def fields_shown(self) -> list[str]:
        return [f.name for f in self.model._meta.concrete_fields if f.name not in self.replaced]

    #: Model fields shown through a display method instead (pretty-printed).
    replaced: tuple[str, ...] = ()

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:  # type: ignore[override]
        return self.get_readonly_fields(request, obj)

    def report(self, request: HttpRequest, done: int, what: str, errors: list[str]) -> None:
        self.message_user(request, f"{done} {what}.", messages.SUCCESS)
        for error in errors:
            self.message_user(request, error, messages.WARNING)


class PayloadAdmin(ApiOnlyAdmin):
    """What active and archived messages share: search by id or payload text, and the
    payload shown on one line in lists and pretty-printed on the row's page."""

    search_fields = ("payload",)
    search_help_text = "A message id, or text found in the payload."

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

    @admin.display(description="payload")
    def payload_preview(self, row: Message | Archive) -> str:
        return preview(row.payload)

    @admin.display(description="payload")
    def payload_pretty(self, row: Message | Archive) -> SafeString:
        return pretty_json(row.payload)


# -- queues ------------------------------------------------------------------------------------


@admin.register(Queue)
class QueueAdmin(ApiOnlyAdmin):
    list_display = (
        "name",
        "paused",
        "visibility_timeout",
        "max_attempts",
        "dead_letter_queue",
        "created_at",
        "links",
    )
    list_filter = ("paused",)
    search_fields = ("name",)
    list_select_related = ("dead_letter_queue",)
    ordering = ("name",)
    # delete_selected replaces Django's stock action of that name, which would delete with
    # the ORM after listing every related row (each message of the queue).
    actions = ("pause", "resume", "purge", "delete_selected")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Deleting a queue takes its messages along: only through the confirmed action.
        return obj is None and super().has_delete_permission(request)

    @admin.display(description="messages")
    def links(self, queue: Queue) -> SafeString:
        return format_html(
            '<a href="../message/?queue__id__exact={0}">active</a> · '
            '<a href="../archive/?queue__id__exact={0}">archive</a>',
            queue.pk,
        )

    def _set_paused(self, request: HttpRequest, queryset: QuerySet[Queue], paused: bool) -> None:
        names = list(queryset.values_list("name", flat=True))
        for name in names:
            api().set_paused(name, paused)
        self.report(request, len(names), "queues paused" if paused else "queues resumed", [])

    @admin.action(description="Pause selected queues", permissions=["change"])
    def pause(self, request: HttpRequest, queryset: QuerySet[Queue]) -> None:
        self._set_paused(request, queryset, True)

    @admin.action(description="Resume selected queues", permissions=["change"])
    def resume(self, request: HttpRequest, queryset: QuerySet[Queue]) -> None:
        self._set_paused(request, queryset, False)

    @admin.action(description="Purge active messages of selected queues…", permissions=["change"])
    def purge(self, request: HttpRequest, queryset: QuerySet[Queue]) -> HttpResponse | None:
        def run(rows: QuerySet[Queue]) -> None:
            names = list(rows.values_list("name", flat=True))
            purged = sum(api().purge_queue(name) for name in names)
            self.report(request, purged, f"messages purged from {len(names)} queues", [])

        return confirm_or_run(
            self,
            request,
            queryset,
            action="purge",
            title="Purge queues",
            consequence="Every active message (ready, delayed and in flight) of these queues "
            "will be deleted. The archive is kept.",
            run=run,
        )

    @admin.action(description="Delete selected queues…", permissions=["delete"])
    def delete_selected(
        self, request: HttpRequest, queryset: QuerySet[Queue]
    ) -> HttpResponse | None:
        def run(rows: QuerySet[Queue]) -> None:
            names = list(rows.values_list("name", flat=True))
            for name in names:
                api().delete_queue(name)
            self.report(request, len(names), "queues deleted with their messages", [])

        return confirm_or_run(
            self,
            request,
            queryset,
            action="delete_selected",
            title="Delete queues",
            consequence="These queues will be deleted with all their active and archived messages.",
            run=run,
        )


# -- workers -----------------------------------------------------------------------------------


@admin.register(Worker)
class WorkerAdmin(ApiOnlyAdmin):
    list_display = (
        "name",
        "hostname",
        "pid",
        "status",
        "queue_names",
        "heartbeat_at",
        "heartbeat_age",
        "stale",
        "shutdown_requested",
        "started_at",
    )
    list_filter = ("status", "queues")
    search_fields = ("name", "hostname")
    readonly_fields = ("queue_names", "heartbeat_age", "stale")
    replaced = ("queues",)
    actions = ("suspend", "resume", "shutdown")

    @property
    def fields_shown(self) -> list[str]:
        return [f.name for f in self.model._meta.concrete_fields]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Worker]:
        timeout = float(conf.get("STALE_WORKER_TIMEOUT"))
        stale = Q(heartbeat_at__lt=Now() - dt.timedelta(seconds=timeout)) & ~Q(
            status=Worker.Status.STOPPED
        )
        return (
            super()
            .get_queryset(request)
            .prefetch_related("queues")
            .annotate(
                is_stale=ExpressionWrapper(stale, output_field=BooleanField()),
                heartbeat_seconds=heartbeat_age_expression(),
            )
        )

    @admin.display(description="queues")
    def queue_names(self, worker: Worker) -> str:
        return ", ".join(sorted(q.name for q in worker.queues.all()))

    @admin.display(description="heartbeat age")
    def heartbeat_age(self, worker: Worker) -> str:
        return _age(worker)

    @admin.display(description="stale", boolean=True)
    def stale(self, worker: Worker) -> bool:
        return bool(getattr(worker, "is_stale", False))

    def _each(
        self,
        request: HttpRequest,
        queryset: QuerySet[Worker],
        call: Callable[[int], Worker],
        what: str,
    ) -> None:
        done, errors = 0, []
        for pk in queryset.values_list("pk", flat=True):
            try:
                call(pk)
                done += 1
            except PgqrsError as exc:
                errors.append(str(exc))
        self.report(request, done, what, errors)

    @admin.action(description="Suspend selected workers (stop claiming)", permissions=["change"])
    def suspend(self, request: HttpRequest, queryset: QuerySet[Worker]) -> None:
        self._each(request, queryset, api().suspend_worker, "workers suspended")

    @admin.action(description="Resume selected workers", permissions=["change"])
    def resume(self, request: HttpRequest, queryset: QuerySet[Worker]) -> None:
        self._each(request, queryset, api().resume_worker, "workers resumed")

    @admin.action(description="Shut down selected workers gracefully", permissions=["change"])
    def shutdown(self, request: HttpRequest, queryset: QuerySet[Worker]) -> None:
        self._each(request, queryset, api().shutdown_worker, "workers asked to shut down")


def heartbeat_age_expression() -> ExpressionWrapper:
    """Time since each worker's last heartbeat, by the database clock."""
    return ExpressionWrapper(Now() - F("heartbeat_at"), output_field=DurationField())


def _age(worker: Worker) -> str:
    age: dt.timedelta | None = getattr(worker, "heartbeat_seconds", None)
    return format_seconds(None if age is None else age.total_seconds())


# -- messages ----------------------------------------------------------------------------------


class StateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("ready", "ready"), ("delayed", "delayed"), ("in_flight", "in flight")]

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
            default=Value("in flight"),
            output_field=CharField(),
        )
        return super().get_queryset(request).annotate(current_state=state)

    @admin.display(description="state")
    def state(self, message: Message) -> str:
        return str(getattr(message, "current_state", "-"))

    @admin.display(description="last error")
    def last_error_pretty(self, message: Message) -> SafeString:
        return pretty_text(message.last_error)

    @admin.action(description="Release selected in-flight messages", permissions=["change"])
    def release(self, request: HttpRequest, queryset: QuerySet[Message]) -> None:
        released = sum(
            api().release_messages(queue, ids)
            for queue, ids in _selected_by_queue(queryset.select_related("queue")).items()
        )
        self.report(request, released, "messages released", [])

    def delete_model(self, request: HttpRequest, obj: Message) -> None:
        api().delete_messages(obj.queue.name, [obj.pk])

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Message]) -> None:
        for queue, ids in _selected_by_queue(queryset.select_related("queue")).items():
            api().delete_messages(queue, ids)


# -- archive -----------------------------------------------------------------------------------


def calendar(changelist: Any, request: HttpRequest) -> dict[str, Any] | None:
    """The archive's date drill-down (years, months, days) without scanning the table.

    Django's own date hierarchy reads the distinct years, months or days present, a full scan
    of a big archive on every page; this one offers the calendar instead (from the year of
    the oldest row, found through the primary key index, to today)."""
    field = changelist.date_hierarchy
    try:
        year, month, day = (
            int(request.GET[f"{field}__{part}"]) if f"{field}__{part}" in request.GET else None
            for part in ("year", "month", "day")
        )
    except ValueError:
        return None

    def link(filters: dict[str, int]) -> str:
        return str(changelist.get_query_string(filters, [f"{field}__"]))

    today = timezone.localdate()
    keys = {"year": f"{field}__year", "month": f"{field}__month", "day": f"{field}__day"}
    if year and month and day:
        chosen = dt.date(year, month, day)
        return {
            "back": {
                "link": link({keys["year"]: year, keys["month"]: month}),
                "title": capfirst(formats.date_format(chosen, "YEAR_MONTH_FORMAT")),
            },
            "choices": [{"title": capfirst(formats.date_format(chosen, "MONTH_DAY_FORMAT"))}],
        }
    if year and month:
        last = (dt.date(year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)).day
        days = [dt.date(year, month, d) for d in range(1, last + 1)]
        return {
            "back": {"link": link({keys["year"]: year}), "title": str(year)},
            "choices": [
                {
                    "link": link({keys["year"]: year, keys["month"]: month, keys["day"]: d.day}),
                    "title": capfirst(formats.date_format(d, "MONTH_DAY_FORMAT")),
                }
                for d in days
                if d <= today
            ],
        }
    if year:
        months = [dt.date(year, m, 1) for m in range(1, 13)]
        return {
            "back": {"link": link({}), "title": "All dates"},
            "choices": [
                {
                    "link": link({keys["year"]: year, keys["month"]: m.month}),
                    "title": capfirst(formats.date_format(m, "YEAR_MONTH_FORMAT")),
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

    @admin.display(description="duration")
    def duration_shown(self, row: Archive) -> str:
        return format_seconds(row.duration)

    @admin.display(description="error")
    def error_line(self, row: Archive) -> str:
        lines = row.error.strip().splitlines()
        return lines[-1][:PREVIEW_CHARS] if lines else ""

    @admin.display(description="result")
    def result_pretty(self, row: Archive) -> SafeString:
        return pretty_json(row.result)

    @admin.display(description="error")
    def error_pretty(self, row: Archive) -> SafeString:
        return pretty_text(row.error)

    @admin.action(description="Retry selected dead or failed messages", permissions=["change"])
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
            errors.append(f"{skipped} selected messages were neither dead nor failed.")
        self.report(request, done, "messages put back in their queues", errors)


# -- dashboard ---------------------------------------------------------------------------------

#: Chart size in SVG user units.
CHART_WIDTH, CHART_HEIGHT = 600, 120


def chart(series: Throughput, label: str) -> dict[str, Any]:
    """Bars for one throughput series, scaled to the chart box (numbers only: the template
    draws them)."""
    count = len(series.processed)
    peak = max(series.processed, default=0) or 1
    step = CHART_WIDTH / count
    bars = []
    for index, (processed, failed) in enumerate(
        zip(series.processed, series.failures, strict=True)
    ):
        height = processed / peak * CHART_HEIGHT
        failed_height = failed / peak * CHART_HEIGHT
        bars.append(
            {
                "x": round(index * step, 2),
                "width": round(max(step - 1, 1), 2),
                "y": round(CHART_HEIGHT - height, 2),
                "height": round(height, 2),
                "failed_y": round(CHART_HEIGHT - failed_height, 2),
                "failed_height": round(failed_height, 2),
                "processed": processed,
                "failed": failed,
                "ago": format_seconds((count - index) * series.bucket_seconds),
            }
        )
    return {
        "label": label,
        "bars": bars,
        "peak": peak if any(series.processed) else 0,
        "total": sum(series.processed),
        "failures": sum(series.failures),
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "bucket": format_seconds(series.bucket_seconds),
    }


@admin.register(Dashboard)
class DashboardAdmin(admin.ModelAdmin):
    """Serves the dashboard at the model's changelist URL; requires ``view_dashboard``."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        opts = self.model._meta
        return [
            path(
                "",
                self.admin_site.admin_view(self.dashboard_view),
                name=f"{opts.app_label}_{opts.model_name}_changelist",
            )
        ]

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        operator = api()
        metrics = operator.all_queues_metrics()
        recent = operator.throughput(window=300, buckets=1)
        hour = operator.throughput(window=3600, buckets=60)
        day = operator.throughput(window=86400, buckets=96)
        stale = {w.pk for w in operator.stale_workers()}
        workers = operator.list_workers(running_only=True)
        now = timezone.now()
        refresh = conf.get("ADMIN_REFRESH_INTERVAL")
        context = {
            **self.admin_site.each_context(request),
            "title": "pgqrs dashboard",
            "opts": self.model._meta,
            "queues": [
                {
                    "metrics": m,
                    "oldest": format_seconds(m.oldest_ready_age),
                    "per_minute": recent.per_minute(m.name),
                }
                for m in metrics
            ],
            "charts": [chart(hour, "last hour"), chart(day, "last day")],
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
            "refresh_seconds": refresh,
            "refresh_ms": None if refresh is None else math.ceil(float(refresh) * 1000),
        }
        return TemplateResponse(request, "pgqrs_django/admin/dashboard.html", context)


__all__ = [
    "ArchiveAdmin",
    "DashboardAdmin",
    "EstimatedCountPaginator",
    "MessageAdmin",
    "QueueAdmin",
    "WorkerAdmin",
]
