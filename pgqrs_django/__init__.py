"""pgqrs_django: a PostgreSQL-backed job queue for Django.

The public API is importable from here lazily, so importing the package does not need Django
to be set up: ``from pgqrs_django import Producer, Consumer, PgqrsAdmin``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .admin_api import PgqrsAdmin
    from .consumer import Consumer
    from .context import current_job
    from .producer import Producer
    from .registry import handler
    from .scheduling import periodic

__all__ = [
    "Consumer",
    "PgqrsAdmin",
    "Producer",
    "__version__",
    "current_job",
    "handler",
    "periodic",
]

_LAZY = {
    "Producer": "pgqrs_django.producer",
    "Consumer": "pgqrs_django.consumer",
    "current_job": "pgqrs_django.context",
    "PgqrsAdmin": "pgqrs_django.admin_api",
    "handler": "pgqrs_django.registry",
    "periodic": "pgqrs_django.scheduling",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pgqrs_django' has no attribute {name!r}")
