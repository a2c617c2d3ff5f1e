"""The ModelAdmin registrations of queues, workers and the dashboard (whose pages are in
views.py and urls.py); active messages and the archive are in messages.py."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.db.models import (
    BooleanField,
    DurationField,
    ExpressionWrapper,
    F,
    Q,
    QuerySet,
)
from django.db.models.functions import Now
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .. import conf
from ..exceptions import PgqrsError
from ..formatting import format_seconds
from ..models import Archive, Dashboard, Message, Queue, Worker
from .base import ApiOnlyAdmin, api, confirm_or_run
from .urls import dashboard_urls

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

    def changelist_of(self, model: type[Message | Archive], queue: Queue) -> str:
        url = reverse(
            f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist",
            current_app=self.admin_site.name,
        )
        return f"{url}?{urlencode({'queue__id__exact': queue.pk})}"

    @admin.display(description=_("messages"))
    def links(self, queue: Queue) -> SafeString:
        return format_html(
            '<a href="{}">{}</a> · <a href="{}">{}</a>',
            self.changelist_of(Message, queue),
            _("active"),
            self.changelist_of(Archive, queue),
            _("archive"),
        )

    def _set_paused(self, request: HttpRequest, queryset: QuerySet[Queue], paused: bool) -> None:
        names = list(queryset.values_list("name", flat=True))
        for name in names:
            api().set_paused(name, paused)
        if paused:
            done = ngettext("%(count)d queue paused.", "%(count)d queues paused.", len(names))
        else:
            done = ngettext("%(count)d queue resumed.", "%(count)d queues resumed.", len(names))
        self.report(request, done % {"count": len(names)}, [])

    @admin.action(description=_("Pause selected queues"), permissions=["change"])
    def pause(self, request: HttpRequest, queryset: QuerySet[Queue]) -> None:
        self._set_paused(request, queryset, True)

    @admin.action(description=_("Resume selected queues"), permissions=["change"])
    def resume(self, request: HttpRequest, queryset: QuerySet[Queue]) -> None:
        self._set_paused(request, queryset, False)

    @admin.action(
        description=_("Purge active messages of selected queues…"), permissions=["change"]
    )
    def purge(self, request: HttpRequest, queryset: QuerySet[Queue]) -> HttpResponse | None:
        def run(rows: QuerySet[Queue]) -> None:
            names = list(rows.values_list("name", flat=True))
            purged = sum(api().purge_queue(name) for name in names)
            queues = ngettext("%(count)d queue", "%(count)d queues", len(names))
            done = ngettext(
                "%(count)d message purged from %(queues)s.",
                "%(count)d messages purged from %(queues)s.",
                purged,
            )
            self.report(
                request, done % {"count": purged, "queues": queues % {"count": len(names)}}, []
            )

        return confirm_or_run(
            self,
            request,
            queryset,
            action="purge",
            title=_("Purge queues"),
            consequence=_(
                "Every active message (ready, delayed and in flight) of these queues will be "
                "deleted. The archive is kept."
            ),
            run=run,
        )

    @admin.action(description=_("Delete selected queues…"), permissions=["delete"])
    def delete_selected(
        self, request: HttpRequest, queryset: QuerySet[Queue]
    ) -> HttpResponse | None:
        def run(rows: QuerySet[Queue]) -> None:
            names = list(rows.values_list("name", flat=True))
            for name in names:
                api().delete_queue(name)
            done = ngettext(
                "%(count)d queue deleted with its messages.",
                "%(count)d queues deleted with their messages.",
                len(names),
            )
            self.report(request, done % {"count": len(names)}, [])

        return confirm_or_run(
            self,
            request,
            queryset,
            action="delete_selected",
            title=_("Delete queues"),
            consequence=_(
                "These queues will be deleted with all their active and archived messages."
            ),
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
        # Time since the last heartbeat, by the database clock.
        age = ExpressionWrapper(Now() - F("heartbeat_at"), output_field=DurationField())
        return (
            super()
            .get_queryset(request)
            .prefetch_related("queues")
            .annotate(
                is_stale=ExpressionWrapper(stale, output_field=BooleanField()),
                heartbeat_seconds=age,
            )
        )

    @admin.display(description=_("queues"))
    def queue_names(self, worker: Worker) -> str:
        return ", ".join(sorted(q.name for q in worker.queues.all()))

    @admin.display(description=_("heartbeat age"))
    def heartbeat_age(self, worker: Worker) -> str:
        age: dt.timedelta | None = getattr(worker, "heartbeat_seconds", None)
        return format_seconds(None if age is None else age.total_seconds())

    @admin.display(description=_("stale"), boolean=True)
    def stale(self, worker: Worker) -> bool:
        return bool(getattr(worker, "is_stale", False))

    def _each(
        self, queryset: QuerySet[Worker], call: Callable[[int], Worker]
    ) -> tuple[int, list[str]]:
        """Call the API on each selected worker: how many it took, and its refusals."""
        done, errors = 0, []
        for pk in queryset.values_list("pk", flat=True):
            try:
                call(pk)
                done += 1
            except PgqrsError as exc:
                errors.append(str(exc))
        return done, errors

    @admin.action(description=_("Suspend selected workers (stop claiming)"), permissions=["change"])
    def suspend(self, request: HttpRequest, queryset: QuerySet[Worker]) -> None:
        n, errors = self._each(queryset, api().suspend_worker)
        done = ngettext("%(count)d worker suspended.", "%(count)d workers suspended.", n)
        self.report(request, done % {"count": n}, errors)

    @admin.action(description=_("Resume selected workers"), permissions=["change"])
    def resume(self, request: HttpRequest, queryset: QuerySet[Worker]) -> None:
        n, errors = self._each(queryset, api().resume_worker)
        done = ngettext("%(count)d worker resumed.", "%(count)d workers resumed.", n)
        self.report(request, done % {"count": n}, errors)

    @admin.action(description=_("Shut down selected workers gracefully"), permissions=["change"])
    def shutdown(self, request: HttpRequest, queryset: QuerySet[Worker]) -> None:
        n, errors = self._each(queryset, api().shutdown_worker)
        done = ngettext(
            "%(count)d worker asked to shut down.", "%(count)d workers asked to shut down.", n
        )
        self.report(request, done % {"count": n}, errors)


# -- dashboard ---------------------------------------------------------------------------------


@admin.register(Dashboard)
class DashboardAdmin(admin.ModelAdmin):
    """Serves the dashboard's pages (urls.py) in place of a changelist; every page requires
    ``pgqrs.view_dashboard``."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        return dashboard_urls(self)
