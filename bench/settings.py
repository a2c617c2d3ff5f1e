"""Django settings for the benchmark processes: pgqrs_django and the bench handlers only."""

from __future__ import annotations

import environ

env = environ.Env()

SECRET_KEY = "pgqrs-django-bench-only"
USE_TZ = True
TIME_ZONE = "UTC"
DATABASES = {"default": env.db("DATABASE_URL")}
INSTALLED_APPS = ["django.contrib.contenttypes", "pgqrs_django", "bench"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
