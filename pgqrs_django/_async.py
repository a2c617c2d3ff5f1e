"""Async twins of the sync API methods.

Each twin runs its sync method through ``asgiref``'s ``sync_to_async`` on Django's shared
sync thread, exactly as Django's own async ORM methods do, so database connections and
transactions behave the same way from async views.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar

from asgiref.sync import sync_to_async

S = TypeVar("S")
P = ParamSpec("P")
R = TypeVar("R")


def async_twin(
    method: Callable[Concatenate[S, P], R],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, R]]:
    """Make ``async def a<name>(...)`` from a sync method ``<name>(...)``."""

    @functools.wraps(method)
    async def twin(self: S, *args: P.args, **kwargs: P.kwargs) -> R:
        return await sync_to_async(method, thread_sensitive=True)(self, *args, **kwargs)

    twin.__name__ = f"a{method.__name__}"
    twin.__qualname__ = twin.__qualname__.rsplit(".", 1)[0] + f".a{method.__name__}"
    twin.__doc__ = f"Async version of :meth:`{method.__name__}`; same arguments and result."
    return twin
