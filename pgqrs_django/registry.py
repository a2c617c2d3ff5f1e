"""Handler registration: which function processes the messages of which queue.

In an installed app's ``jobs.py`` (imported when Django starts, like ``admin.py``)::

    import pgqrs_django

    @pgqrs_django.handler("emails")
    def send_email(message):
        ...  # message is a pgqrs_django.models.Message; return a JSON value to keep it

    @pgqrs_django.handler("webhooks")
    async def call_webhook(message):
        ...

A handler that returns normally succeeds (the message is archived with its return value as
``result``); one that raises fails (retried with backoff, dead-lettered after
``max_attempts``). ``manage.py pgqrs_worker --handler`` adds handlers from the command line.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import threading
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any, TypeVar

from django.utils.module_loading import autodiscover_modules, import_string

from .exceptions import InvalidInput
from .validation import validate_queue_name

F = TypeVar("F", bound=Callable[..., Any])

#: The module name autodiscovered in every installed app.
MODULE_NAME = "jobs"


@dataclasses.dataclass(frozen=True)
class Handler:
    """A function bound to a queue; ``is_async`` when it is a coroutine function."""

    queue: str
    func: Callable[..., Any]
    is_async: bool

    @property
    def path(self) -> str:
        """The function's dotted path, for logs."""
        module = getattr(self.func, "__module__", None) or "?"
        name = getattr(self.func, "__qualname__", None) or repr(self.func)
        return f"{module}.{name}"


_handlers: dict[str, Handler] = {}
_lock = threading.Lock()


def _is_async(func: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "__call__", None)  # noqa: B004  (async callable objects)
    )


def make_handler(queue: str, func: Callable[..., Any]) -> Handler:
    """A :class:`Handler` for ``func`` on ``queue`` (validated), without registering it."""
    validate_queue_name(queue)
    if not callable(func):
        raise InvalidInput(f"the handler of queue {queue!r} must be callable, not {func!r}")
    return Handler(queue, func, _is_async(func))


def register(queue: str, func: Callable[..., Any]) -> Handler:
    """Make ``func`` the handler of ``queue``. Registering the same function again (a module
    imported twice) is harmless; a different function for the same queue is an error."""
    new = make_handler(queue, func)
    with _lock:
        old = _handlers.get(queue)
        if old is not None and old.func is not func and old.path != new.path:
            raise InvalidInput(
                f"queue {queue!r} already has the handler {old.path}; cannot also register "
                f"{new.path}"
            )
        _handlers[queue] = new
    return new


def handler(queue: str) -> Callable[[F], F]:
    """Decorator: register the decorated function (sync or ``async def``) as the handler of
    ``queue``. It receives the claimed :class:`~pgqrs_django.models.Message`. The function
    is returned unchanged, so it can still be called directly."""
    validate_queue_name(queue)

    def decorate(func: F) -> F:
        register(queue, func)
        return func

    return decorate


def unregister(queue: str) -> Handler | None:
    """Forget the handler of ``queue`` (returns it, or None)."""
    with _lock:
        return _handlers.pop(queue, None)


def get(queue: str) -> Handler | None:
    """The registered handler of ``queue``, or None."""
    return _handlers.get(queue)


def registered() -> dict[str, Handler]:
    """Every registered handler, by queue name."""
    with _lock:
        return dict(_handlers)


def autodiscover() -> None:
    """Import the ``jobs`` module of every installed app (called by ``PgqrsConfig.ready``)."""
    autodiscover_modules(MODULE_NAME)


def _import(path: str) -> ModuleType | Any:
    """A module (imported, so its decorators run) or an object named by a dotted path."""
    try:
        return importlib.import_module(path)
    except ModuleNotFoundError as exc:
        # Only "path is not a module" sends us on to "path is an object in a module"; a
        # module that exists but fails to import reports its own error.
        missing = exc.name or ""
        if "." not in path or not (path == missing or path.startswith(missing + ".")):
            raise InvalidInput(f"cannot import {path!r}: {exc}") from None
    except ImportError as exc:
        raise InvalidInput(f"cannot import {path!r}: {exc}") from None
    try:
        return import_string(path)
    except ImportError as exc:
        raise InvalidInput(f"cannot import {path!r}: {exc}") from None


def resolve(queues: Iterable[str], specs: Iterable[str] = ()) -> dict[str, Handler]:
    """The handler of every queue a worker serves, by queue name.

    ``specs`` are ``--handler`` values: ``dotted.module`` (imported, its ``@handler``
    decorators register), ``dotted.function`` (handles every queue in ``queues``) or
    ``QUEUE=dotted.function`` (handles QUEUE, which is then served too). With no ``queues``
    the worker serves every queue that has a handler. Raises InvalidInput when a queue has
    no handler or a spec cannot be imported.
    """
    wanted = [validate_queue_name(q) for q in queues]
    explicit: dict[str, Handler] = {}
    for spec in specs:
        queue, sep, path = spec.partition("=")
        if not sep:
            queue, path = "", spec
        target = _import(path.strip())
        if isinstance(target, ModuleType):
            if queue:
                raise InvalidInput(f"--handler {spec!r}: {path!r} is a module, not a function")
            continue
        if queue:
            explicit[validate_queue_name(queue)] = make_handler(queue, target)
            continue
        if not wanted:
            raise InvalidInput(
                f"--handler {spec!r} names a function but no --queue is given: "
                "add --queue NAME or write QUEUE=dotted.path"
            )
        for name in wanted:
            explicit[name] = make_handler(name, target)
    known = registered()
    names = list(dict.fromkeys([*wanted, *explicit]))
    if not names:
        names = sorted(known)
    if not names:
        raise InvalidInput(
            "no queue to serve: give --queue NAME, or register handlers with "
            f"@pgqrs_django.handler('NAME') in an app's {MODULE_NAME}.py"
        )
    out = {}
    for name in names:
        found = explicit.get(name) or known.get(name)
        if found is None:
            raise InvalidInput(
                f"no handler for queue {name!r}: decorate a function with "
                f"@pgqrs_django.handler({name!r}) in an app's {MODULE_NAME}.py, "
                "or pass --handler dotted.path"
            )
        out[name] = found
    return out
