"""Django settings for the benchmark processes: pgqrs_django and the bench handlers only."""

from __future__ import annotations

import environ

env = environ.Env()

SECRET_KEY = "pgqrs-django-bench-only"
USE_TZ = True
TIME_ZONE = "UTC"
DATABASES = {"default": env.db("DATABASE_URL")}
if env.bool("BENCH_PREPARE", default=False):
    # Server-side binding with prepared statements: what a project may choose for speed
    # when no transaction-pooling PgBouncer sits in between.
    DATABASES["default"]["OPTIONS"] = {"server_side_binding": True, "prepare_threshold": 2}
INSTALLED_APPS = ["django.contrib.contenttypes", "pgqrs_django", "bench"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
