from __future__ import annotations

from importlib.util import find_spec

from django.apps import AppConfig
from django.conf import settings


def tasks_framework_installed() -> bool:
    """Whether Django's Tasks framework can be imported: ``django.tasks`` (Django 6) or the
    ``django_tasks`` backport."""
    return any(find_spec(name) is not None for name in ("django.tasks", "django_tasks"))


class PgqrsConfig(AppConfig):
    name = "pgqrs_django"
    label = "pgqrs"
    verbose_name = "pgqrs job queue"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
        from .registry import autodiscover

        autodiscover()  # import every installed app's jobs.py (handler registration)
        if getattr(settings, "TASKS", None) and tasks_framework_installed():
            from .tasks import register_handlers

            register_handlers()  # the queues of PgqrsBackend entries in TASKS run tasks
