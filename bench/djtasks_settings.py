"""Django settings of the django-tasks-db peer (its own database, no pgqrs)."""

from __future__ import annotations

import environ

env = environ.Env()

SECRET_KEY = "pgqrs-django-bench-only"
USE_TZ = True
DATABASES = {"default": env.db("DATABASE_URL")}
INSTALLED_APPS = ["django_tasks", "django_tasks_db"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
