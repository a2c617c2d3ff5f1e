"""Settings for pgqrs_django: the ``PGQRS`` dict of the Django settings.

Where each key's value comes from, the first that has it wins:

1. ``settings.PGQRS[KEY]`` (so ``override_settings(PGQRS={...})`` in a test always wins);
2. the environment variable ``PGQRS_<KEY>`` (pgqrs's own names, e.g.
   ``PGQRS_DEFAULT_LOCK_TIME=30``), read in :func:`_from_environment` only;
3. :data:`DEFAULTS`.

The resolved values are cached, as django-debug-toolbar caches its config: the cache is
cleared when ``PGQRS`` changes (Django's ``setting_changed``, sent by ``override_settings``)
and by :func:`clear_cache` (after changing ``os.environ`` in a running process). Each value is
checked when it is resolved: a bad one raises :class:`~pgqrs_django.exceptions.InvalidSetting`
naming the key or variable and the value, and the system check ``pgqrs.E003`` lists them all.
"""

from __future__ import annotations

import functools
import math
import os
from typing import Any, NamedTuple

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from .exceptions import InvalidSetting

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

#: The kind of value each key takes (keys not listed are numbers > 0).
INTEGERS = (
    "DEFAULT_BATCH_SIZE",
    "MAX_ATTEMPTS",
    "MAX_PAYLOAD_BYTES",
    "MAX_PAYLOAD_DEPTH",
    "MAX_BATCH_BYTES",
)
OPTIONAL = ("RATE_LIMIT", "RATE_LIMIT_BURST", "ADMIN_REFRESH_INTERVAL")
FRACTIONS = ("RETRY_JITTER",)
ALIASES = ("DATABASE",)

#: How far a shown value is cut (the error must stay one readable line).
_SHOWN_CHARS = 100


class Resolved(NamedTuple):
    """Every key's value, or the error that stopped it (by key)."""

    values: dict[str, Any]
    errors: dict[str, str]


def expected(key: str) -> str:
    """What ``key`` accepts, as the error messages say it."""
    if key in ALIASES:
        return "a database alias (a non-empty string)"
    if key in INTEGERS:
        return "a whole number > 0"
    if key in FRACTIONS:
        return "a number from 0 to 1"
    return "a number > 0, or None" if key in OPTIONAL else "a number > 0"


def _checked(key: str, value: Any) -> Any:
    """``value`` as ``key`` keeps it (floats for the numbers that may have a fraction);
    raises ValueError when it is not of ``key``'s kind."""
    if key in ALIASES:
        if isinstance(value, str) and value:
            return value
        raise ValueError
    if value is None and key in OPTIONAL:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError
    if key in INTEGERS:
        if isinstance(value, int) and value > 0:
            return value
    elif key in FRACTIONS:
        if 0 <= value <= 1:
            return float(value)
    elif value > 0:
        return float(value)
    raise ValueError


def _parsed(key: str, text: str) -> Any:
    """An environment variable's text as a value of ``key``'s kind (unchecked)."""
    text = text.strip()
    if key in ALIASES:
        return text
    if key in OPTIONAL and text.lower() in ("", "none"):
        return None
    return int(text) if key in INTEGERS else float(text)


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def _from_environment() -> dict[str, str]:
    """The ``PGQRS_<KEY>`` variables of the known keys: the one place pgqrs reads them."""
    return {key: os.environ[f"PGQRS_{key}"] for key in DEFAULTS if f"PGQRS_{key}" in os.environ}


def user_settings() -> dict[str, Any]:
    """The ``PGQRS`` dict from Django settings (empty if absent)."""
    value = getattr(settings, "PGQRS", {})
    if not isinstance(value, dict):
        raise InvalidSetting(f"settings.PGQRS must be a dict, not {_shown(value)}")
    return value


@functools.cache
def resolve() -> Resolved:
    """Every key resolved and checked (cached until ``PGQRS`` changes)."""
    try:
        given = user_settings()
    except InvalidSetting as exc:
        return Resolved({}, dict.fromkeys(DEFAULTS, str(exc)))
    environment = _from_environment()
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for key, default in DEFAULTS.items():
        if key in given:
            where, raw = f"PGQRS[{key!r}]", given[key]
        elif key in environment:
            where, raw = f"environment variable PGQRS_{key}", environment[key]
        else:
            values[key] = default
            continue
        try:
            values[key] = _checked(key, raw if key in given else _parsed(key, raw))
        except ValueError:
            errors[key] = f"{where} must be {expected(key)}, not {_shown(raw)}"
    return Resolved(values, errors)


def clear_cache() -> None:
    """Forget the resolved settings: the next :func:`get` reads settings and environment
    again. Needed only after changing ``os.environ`` in a running process."""
    resolve.cache_clear()


@receiver(setting_changed)
def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "PGQRS":
        clear_cache()


def get(key: str) -> Any:
    """One setting's value (see the module docstring for where it comes from). Raises
    :class:`~pgqrs_django.exceptions.InvalidSetting` when its value is not valid."""
    if key not in DEFAULTS:
        raise KeyError(f"unknown pgqrs setting {key!r}")
    resolved = resolve()
    if key in resolved.errors:
        raise InvalidSetting(resolved.errors[key])
    return resolved.values[key]


def problems() -> list[str]:
    """One line per invalid value (for the system checks), in key order."""
    errors = resolve().errors
    return list(dict.fromkeys(errors[key] for key in DEFAULTS if key in errors))


def database() -> str:
    """The database alias pgqrs reads and writes."""
    return str(get("DATABASE"))
