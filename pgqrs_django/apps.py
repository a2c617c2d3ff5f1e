from __future__ import annotations

from django.apps import AppConfig


class PgqrsConfig(AppConfig):
    name = "pgqrs_django"
    label = "pgqrs"
    verbose_name = "pgqrs job queue"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
        from .registry import autodiscover

        autodiscover()  # import every installed app's jobs.py (handler registration)
