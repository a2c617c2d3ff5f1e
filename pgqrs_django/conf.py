"""Settings for pgqrs_django, read at use time.

Every key lives in the ``PGQRS`` dict of the Django settings and can be overridden by an
environment variable ``PGQRS_<KEY>`` (parsed with django-environ according to the type of the
default). Nothing is cached, so ``override_settings`` and changed environment variables take
effect on the next call.
"""

from __future__ import annotations

import os
from typing import Any

import environ
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

#: The defaults, in one place. ``None`` means "off" for the optional limits.
DEFAULTS: dict[str, Any] = {
    # Database alias every pgqrs query runs on.
    "DATABASE": "default",
    # Seconds a claimed message stays invisible (the lease); a queue's own
    # visibility_timeout, set from this at creation, takes precedence.
    "DEFAULT_LOCK_TIME": 5.0,
    # Messages claimed per round trip by workers and `message read`.
    "DEFAULT_BATCH_SIZE": 100,
    # Deliveries before a failing message is dead-lettered (queue default).
    "MAX_ATTEMPTS": 5,
    # Retry backoff after fail(): base * 2**(attempt-1), capped, with +/- jitter.
    "RETRY_BACKOFF_BASE": 1.0,
    "RETRY_BACKOFF_MAX": 3600.0,
    "RETRY_JITTER": 0.1,
    # Worker liveness: heartbeat period, and age after which a worker counts as dead.
    "HEARTBEAT_INTERVAL": 10.0,
    "STALE_WORKER_TIMEOUT": 60.0,
    # Worker polling period when no notification arrives.
    "POLL_INTERVAL": 1.0,
    # Payload limits: serialised size in bytes and nesting depth.
    "MAX_PAYLOAD_BYTES": 1_048_576,
    "MAX_PAYLOAD_DEPTH": 32,
    # Largest serialised batch (one jsonb array in one statement; jsonb holds at most 256 MiB).
    "MAX_BATCH_BYTES": 134_217_728,
    # Longest delay or lock time accepted, in seconds (guards against absurd values).
    "MAX_DELAY": 366 * 24 * 3600.0,
    # Producer token bucket: messages per second and burst size; None disables it.
    "RATE_LIMIT": None,
    "RATE_LIMIT_BURST": None,
    # Seconds between automatic reloads of the admin dashboard; None turns reloading off.
    "ADMIN_REFRESH_INTERVAL": 10.0,
}

#: Keys whose value must be a number > 0 (or >= 0 where listed in NON_NEGATIVE).
POSITIVE_NUMBERS = (
    "DEFAULT_LOCK_TIME",
    "DEFAULT_BATCH_SIZE",
    "MAX_ATTEMPTS",
    "RETRY_BACKOFF_BASE",
    "RETRY_BACKOFF_MAX",
    "HEARTBEAT_INTERVAL",
    "STALE_WORKER_TIMEOUT",
    "POLL_INTERVAL",
    "MAX_PAYLOAD_BYTES",
    "MAX_PAYLOAD_DEPTH",
    "MAX_BATCH_BYTES",
    "MAX_DELAY",
)
INTEGERS = (
    "DEFAULT_BATCH_SIZE",
    "MAX_ATTEMPTS",
    "MAX_PAYLOAD_BYTES",
    "MAX_PAYLOAD_DEPTH",
    "MAX_BATCH_BYTES",
)
OPTIONAL_POSITIVE = ("RATE_LIMIT", "RATE_LIMIT_BURST", "ADMIN_REFRESH_INTERVAL")

_env = environ.Env()


def _from_env(key: str) -> tuple[bool, Any]:
    name = f"PGQRS_{key}"
    if name not in os.environ:
        return False, None
    raw = os.environ[name]
    default = DEFAULTS[key]
    try:
        if key in OPTIONAL_POSITIVE:
            return True, (None if raw.strip().lower() in ("", "none") else _env.float(name))
        if key in INTEGERS:
            return True, _env.int(name)
        if isinstance(default, float):
            return True, _env.float(name)
        return True, _env.str(name)
    except (ValueError, ImproperlyConfigured) as exc:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a valid value: {exc}") from None


def user_settings() -> dict[str, Any]:
    """The ``PGQRS`` dict from Django settings (empty if absent)."""
    value = getattr(settings, "PGQRS", {})
    if not isinstance(value, dict):
        raise ImproperlyConfigured("settings.PGQRS must be a dict")
    return value


def get(key: str) -> Any:
    """One setting: environment variable, then ``settings.PGQRS``, then the default."""
    if key not in DEFAULTS:
        raise KeyError(f"unknown pgqrs setting {key!r}")
    found, value = _from_env(key)
    if found:
        return value
    return user_settings().get(key, DEFAULTS[key])


def database() -> str:
    """The database alias pgqrs reads and writes."""
    return str(get("DATABASE"))
