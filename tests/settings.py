"""Settings for pgqrs_django's own test suite.

``DATABASE_URL`` names the PostgreSQL server; the pytest plugin
(``pgqrs_django.testing.pytest_plugin``) starts an embedded one when it is not set.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import django
import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

if not env.str("DATABASE_URL", default=""):
    raise ImproperlyConfigured(
        "DATABASE_URL is not set: run the tests with `make test` or `pytest` (which start an "
        "embedded PostgreSQL), or set DATABASE_URL=postgresql://..."
    )

SECRET_KEY = "pgqrs-django-tests-only"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["*"]
if django.VERSION >= (6, 1):
    # Django 6.1 warns (RemovedInDjango2028Warning, an error under our filterwarnings) when
    # mail is sent without MAILERS; the test runner swaps every mailer for locmem anyway.
    MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}

DATABASES = {"default": env.db("DATABASE_URL")}
# One test database per checkout, so several checkouts can share one server.
_checkout = hashlib.sha1(str(BASE_DIR).encode()).hexdigest()[:8]
DATABASES["default"]["TEST"] = {"NAME": f"test_pgqrs_{_checkout}"}
if env.str("PGQRS_TEST_PGBOUNCER", default="") == "1":
    # Behind PgBouncer in transaction pooling mode, named (server-side) cursors cannot
    # survive across transactions.
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
# Workers keep each handler thread's connection from job to job, as docs/worker.md advises
# for a deployment; tests/test_worker_connections.py covers Django's default (0) itself.
DATABASES["default"] |= {"CONN_MAX_AGE": 60, "CONN_HEALTH_CHECKS": True}
# Never connected to: lets the system-check tests point PGQRS at a non-PostgreSQL alias.
DATABASES["sqlite"] = {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}

PGQRS: dict[str, object] = {}
DATABASE_ROUTERS: list[str] = ["tests.databases.SqliteHoldsNothing"]
#: `make test-queue-db`: the whole suite with the pgqrs tables on a second database ("queue",
#: its own test database on the same server) while the tests' business data stays on default.
QUEUE_DB = "queue" if env.str("PGQRS_TEST_QUEUE_DB", default="") == "1" else None
if QUEUE_DB is not None:
    # A child process started by a test gets the queue test database's URL directly.
    DATABASES[QUEUE_DB] = env.db("PGQRS_TEST_QUEUE_URL", default=env.str("DATABASE_URL"))
    DATABASES[QUEUE_DB]["TEST"] = {"NAME": f"test_pgqrs_{_checkout}_queue"}
    DATABASE_ROUTERS = [*DATABASE_ROUTERS, "pgqrs_django.routers.PgqrsRouter"]
    PGQRS = {"DATABASE": QUEUE_DB}
    # Its own default test database too, so `make test` can run alongside.
    DATABASES["default"]["TEST"] = {"NAME": f"test_pgqrs_{_checkout}_main"}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "pgqrs_django",
    "tests.testapp",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "tests.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]
STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Django's Tasks framework: django.tasks on Django 6, the django-tasks backport on 5.2.
TASKS_FRAMEWORK = "django.tasks" if django.VERSION >= (6, 0) else "django_tasks"
if TASKS_FRAMEWORK == "django_tasks":
    INSTALLED_APPS.append("django_tasks")
TASKS = {
    "default": {
        "BACKEND": "pgqrs_django.tasks.PgqrsBackend",
        "QUEUES": ["default", "tasks-other", "emails"],  # emails: docs/tasks.md
    },
    # Not ours: the tests check that pgqrs_worker refuses its tasks.
    "dummy": {"BACKEND": f"{TASKS_FRAMEWORK}.backends.dummy.DummyBackend"},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
