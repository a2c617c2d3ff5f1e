"""A backend for Django's Tasks framework: ``django.tasks`` (Django 6) or the ``django-tasks``
backport (``django_tasks``, Django 5.2). One code path serves both; see docs/tasks.md.

``@task`` functions become messages of the pgqrs queue named by the task's ``queue_name``;
``pgqrs_worker`` runs them (the backend registers :func:`run_task` as the handler of each
queue in its ``QUEUES``); the result id is the message id, so results are read back from the
active message while it waits or runs and from the archive once it is done.

The message payload::

    {"django_task": "myapp.tasks.send_welcome", "backend": "default",
     "queue_name": "default", "run_after": null, "args": [...], "kwargs": {...}}

(the TaskResult id is the message's own id, so the payload does not repeat it).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, transaction
from django.db.models import BooleanField, ExpressionWrapper, Q
from django.db.models.functions import Now
from django.utils.module_loading import import_string

from . import conf, registry, sql
from .exceptions import InvalidInput, PgqrsError, QueueNotFound
from .models import Archive, Message, Queue
from .producer import Producer
from .queues import resolve
from .signals import message_enqueued, send_on_commit
from .validation import serialize_payload, validate_queue_name

# Django 6 ships the framework as django.tasks; on Django 5.2 the django-tasks backport
# provides the same modules under django_tasks (its InvalidTask is InvalidTaskError). Type
# checking follows django.tasks (django-stubs).
try:
    from django.tasks import base as tasks_base
    from django.tasks import exceptions as tasks_exceptions
    from django.tasks import signals as tasks_signals
    from django.tasks.backends import base as tasks_backends

    InvalidTask = tasks_exceptions.InvalidTask
except ImportError:
    from django_tasks import base as tasks_base  # type: ignore[no-redef]
    from django_tasks import exceptions as tasks_exceptions  # type: ignore[no-redef]
    from django_tasks import signals as tasks_signals  # type: ignore[no-redef]
    from django_tasks.backends import base as tasks_backends  # type: ignore[no-redef]

    InvalidTask = tasks_exceptions.InvalidTaskError  # type: ignore[attr-defined,misc]

BaseTaskBackend = tasks_backends.BaseTaskBackend
DEFAULT_TASK_QUEUE_NAME = tasks_base.DEFAULT_TASK_QUEUE_NAME
Task = tasks_base.Task
TaskContext = tasks_base.TaskContext
TaskError = tasks_base.TaskError
TaskResult = tasks_base.TaskResult
TaskResultStatus = tasks_base.TaskResultStatus
TaskResultDoesNotExist = tasks_exceptions.TaskResultDoesNotExist
task_enqueued = tasks_signals.task_enqueued
task_finished = tasks_signals.task_finished
task_started = tasks_signals.task_started

__all__ = [
    "InvalidTask",
    "PgqrsBackend",
    "TaskNotCompleted",
    "TaskQueueMissing",
    "TaskResultDoesNotExist",
    "TaskResultStatus",
    "framework",
    "run_task",
    "task_error",
]

#: The payload key that marks a message as a Django task (its value: the task's dotted path).
TASK_KEY = "django_task"
#: OPTIONS the backend understands, with their defaults.
OPTION_DEFAULTS: dict[str, Any] = {"ENQUEUE_ON_COMMIT": False}


def framework() -> str:
    """Which Tasks framework the backend runs on: ``"django.tasks"`` or ``"django_tasks"``."""
    return BaseTaskBackend.__module__.split(".backends", 1)[0]


class TaskNotCompleted(PgqrsError):
    """Recorded as a task's error when it ended without an exception of its own: an operator
    cancelled its message, or it was dead-lettered without running (its workers died)."""


class TaskQueueMissing(QueueNotFound):
    """The pgqrs queue of a task's ``queue_name`` does not exist."""

    def __init__(self, name: str, alias: str) -> None:
        super().__init__(name)
        self.args = (
            f"queue {name!r} does not exist: TASKS[{alias!r}] lists it in QUEUES, but pgqrs "
            f"queues are created explicitly: run `manage.py pgqrs queue create {name}` "
            "(or PgqrsAdmin().create_queue)",
        )


def queues_of(alias: str, params: dict[str, Any]) -> list[str]:
    """The validated QUEUES of a TASKS entry (the framework's default: ``["default"]``)."""
    names = params.get("QUEUES", [DEFAULT_TASK_QUEUE_NAME])
    if isinstance(names, str) or not names:
        raise ImproperlyConfigured(
            f"TASKS[{alias!r}]['QUEUES'] must list the pgqrs queues its tasks may use"
        )
    try:
        return [validate_queue_name(name) for name in names]
    except InvalidInput as exc:
        raise ImproperlyConfigured(f"TASKS[{alias!r}]['QUEUES']: {exc}") from None


class PgqrsBackend(BaseTaskBackend):
    """Runs Django tasks on pgqrs queues. ``TASKS["default"] = {"BACKEND":
    "pgqrs_django.tasks.PgqrsBackend", "QUEUES": ["default"], "OPTIONS": {...}}``.

    OPTIONS: ``ENQUEUE_ON_COMMIT`` (default False): inside a transaction on the pgqrs
    database, insert the message when the transaction commits instead of at once.
    """

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        names = queues_of(alias, params)
        self.queues = set(names)
        unknown = sorted(set(self.options) - set(OPTION_DEFAULTS))
        if unknown:
            raise ImproperlyConfigured(
                f"TASKS[{alias!r}]['OPTIONS'] has unknown keys {unknown}; "
                f"PgqrsBackend understands {sorted(OPTION_DEFAULTS)}"
            )
        self.enqueue_on_commit = bool(self.options.get("ENQUEUE_ON_COMMIT", False))
        for name in names:
            registry.register(name, run_task)

    @property
    def database(self) -> str:
        """The database alias the messages live in (``PGQRS["DATABASE"]``)."""
        return conf.database()

    # -- enqueueing -----------------------------------------------------------------------

    def enqueue(self, task: Task, args: Any, kwargs: Any) -> TaskResult:
        """Put the task on its queue: a message with ``priority`` = the task's priority,
        visible from ``run_after`` (at once when None). Returns its READY result."""
        self.validate_task(task)
        run_after = task.run_after
        payload = {
            TASK_KEY: task.module_path,
            "backend": self.alias,
            "queue_name": task.queue_name,
            "run_after": run_after.isoformat() if run_after is not None else None,
            "args": list(args),
            "kwargs": dict(kwargs),
        }
        serialize_payload(payload)  # bad arguments fail here, before anything is written
        using = self.database
        if self.enqueue_on_commit and connections[using].in_atomic_block:
            return self._enqueue_on_commit(task, payload, using)
        producer = Producer(self._queue(task.queue_name), using=using)
        if run_after is None:
            message = producer.enqueue(payload, priority=task.priority)
        else:
            message = producer.enqueue_at(payload, run_after, priority=task.priority)
        result = self._new_result(task, str(message.id), payload, message.enqueued_at)
        send_on_commit(task_enqueued, type(self), using, task_result=result)
        return result

    def _queue(self, name: str) -> Queue:
        try:
            return resolve(name, self.database)
        except QueueNotFound:
            raise TaskQueueMissing(name, self.alias) from None

    def _enqueue_on_commit(self, task: Task, payload: dict[str, Any], using: str) -> TaskResult:
        """Reserve the message id now (the result has it at once) and insert the message
        when the transaction commits; a rollback drops it (the id stays unused)."""
        queue = self._queue(task.queue_name)
        with connections[using].cursor() as cursor:
            msg_id = sql.reserve_message_id(cursor)
        result = self._new_result(task, str(msg_id), payload, None)

        def insert() -> None:
            message = Message.objects.using(using).create(
                id=msg_id,
                queue=queue,
                payload=payload,
                priority=task.priority,
                enqueued_at=Now(),
                vt=task.run_after if task.run_after is not None else Now(),
            )
            message.refresh_from_db(using=using, fields=["enqueued_at", "vt"])
            send_on_commit(message_enqueued, Producer, using, queue=queue.name, messages=[message])
            send_on_commit(task_enqueued, type(self), using, task_result=result)

        transaction.on_commit(insert, using=using)
        return result

    def _new_result(
        self, task: Task, result_id: str, payload: dict[str, Any], enqueued_at: dt.datetime | None
    ) -> TaskResult:
        return TaskResult(
            task=task,
            id=result_id,
            status=TaskResultStatus.READY,
            enqueued_at=enqueued_at,
            started_at=None,
            finished_at=None,
            last_attempted_at=None,
            args=payload["args"],
            kwargs=payload["kwargs"],
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )

    # -- results --------------------------------------------------------------------------

    def get_result(self, result_id: str) -> TaskResult:
        """The result with this id (a message id): from the active message while it waits or
        runs, from the archive once done. Raises TaskResultDoesNotExist."""
        try:
            pk = int(result_id)
        except (TypeError, ValueError):
            raise TaskResultDoesNotExist(result_id) from None
        using = self.database
        active = (
            Message.objects.using(using)
            .filter(pk=pk, payload__has_key=TASK_KEY)
            .select_related("consumer")
            .annotate(
                running=ExpressionWrapper(
                    Q(claimed_at__isnull=False, vt__gt=Now()), output_field=BooleanField()
                )
            )
            .first()
        )
        if active is not None:
            return self._active_result(active, result_id)
        done = Archive.objects.using(using).filter(pk=pk, payload__has_key=TASK_KEY).first()
        if done is not None:
            return self._archived_result(done, result_id)
        raise TaskResultDoesNotExist(result_id)

    def _result(self, row: Message | Archive, result_id: str, **fields: Any) -> TaskResult:
        payload = row.payload
        try:
            task = load_task(payload[TASK_KEY])
            task = dataclasses.replace(
                task,
                priority=row.priority,
                queue_name=payload.get("queue_name", task.queue_name),
                run_after=_parse_time(payload.get("run_after")),
            )
        except InvalidTask as exc:
            raise TaskResultDoesNotExist(f"{result_id}: {exc}") from None
        return TaskResult(
            task=task,
            id=result_id,
            enqueued_at=row.enqueued_at,
            started_at=row.dequeued_at,
            args=payload.get("args", []),
            kwargs=payload.get("kwargs", {}),
            backend=payload.get("backend", self.alias),
            **fields,
        )

    def _active_result(self, msg: Message, result_id: str) -> TaskResult:
        running = bool(getattr(msg, "running", False))
        holder = msg.consumer.name if running and msg.consumer is not None else ""
        return self._result(
            msg,
            result_id,
            status=TaskResultStatus.RUNNING if running else TaskResultStatus.READY,
            finished_at=None,
            last_attempted_at=msg.claimed_at if running else None,
            errors=[task_error(msg.last_error, msg.last_error_class)] if msg.last_error else [],
            worker_ids=_worker_ids(msg.read_ct, holder),
        )

    def _archived_result(self, row: Archive, result_id: str) -> TaskResult:
        succeeded = row.outcome == Archive.Outcome.SUCCEEDED
        last_attempt = row.dequeued_at
        if row.duration is not None:
            last_attempt = row.archived_at - dt.timedelta(seconds=row.duration)
        result = self._result(
            row,
            result_id,
            status=TaskResultStatus.SUCCESSFUL if succeeded else TaskResultStatus.FAILED,
            finished_at=row.archived_at,
            last_attempted_at=last_attempt if row.read_ct else None,
            errors=[] if succeeded else [task_error(row.error, row.error_class)],
            worker_ids=_worker_ids(row.read_ct, row.worker_name),
        )
        if succeeded:
            object.__setattr__(result, "_return_value", row.result)
        return result


def _worker_ids(deliveries: int, last: str) -> list[str]:
    """One entry per delivery (so ``attempts`` counts deliveries): pgqrs keeps the name of
    the last worker only; earlier entries are empty."""
    if deliveries <= 0:
        return []
    return [""] * (deliveries - 1) + [last]


def _parse_time(value: object) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if isinstance(value, str) else None


def task_error(text: str, exception_class: str) -> TaskError:
    """A framework ``TaskError`` from a stored error and its exception's class path (both
    recorded by ``Consumer.fail``). An error that was no exception of the task's own (a
    cancel reason, a message dead-lettered without running) has no class path and becomes
    :class:`TaskNotCompleted`."""
    path = exception_class or f"{TaskNotCompleted.__module__}.{TaskNotCompleted.__qualname__}"
    return TaskError(exception_class_path=path, traceback=text)


# -- running tasks in pgqrs_worker ---------------------------------------------------------


def load_task(path: object) -> Task:
    """The Task object at ``path``; it must be a task of a :class:`PgqrsBackend`.
    Raises InvalidTask with the reason."""
    if not isinstance(path, str) or not path:
        raise InvalidTask(f"{path!r} is not the dotted path of a task")
    try:
        found = import_string(path)
    except ImportError as exc:
        raise InvalidTask(f"cannot import task {path!r}: {exc}") from None
    if not isinstance(found, Task):
        raise InvalidTask(f"{path!r} is not a task (decorate the function with @task)")
    backend = found.get_backend()
    if not isinstance(backend, PgqrsBackend):
        raise InvalidTask(
            f"task {path!r} belongs to TASKS[{found.backend!r}] "
            f"({type(backend).__module__}.{type(backend).__qualname__}), not to a PgqrsBackend"
        )
    return found


def run_task(message: Message) -> Any:
    """The pgqrs handler of every task queue: run the task a message describes and return
    its (JSON) return value, which the worker archives as the result. An exception fails the
    message (retried while the queue's ``max_attempts`` allows, then FAILED)."""
    payload = message.payload
    if not isinstance(payload, dict) or TASK_KEY not in payload:
        raise InvalidTask(
            f"message {message.id} is not a Django task (no {TASK_KEY!r} key in its payload); "
            "a queue listed in a PgqrsBackend's QUEUES carries tasks only"
        )
    task = load_task(payload[TASK_KEY])
    backend = task.get_backend()
    args, kwargs = payload.get("args", []), payload.get("kwargs", {})
    result: TaskResult = TaskResult(
        task=task,
        id=str(message.id),
        status=TaskResultStatus.RUNNING,
        enqueued_at=message.enqueued_at,
        started_at=message.dequeued_at,
        finished_at=None,
        last_attempted_at=message.claimed_at,
        args=args,
        kwargs=kwargs,
        backend=backend.alias,
        errors=[task_error(message.last_error, message.last_error_class)]
        if message.last_error
        else [],
        worker_ids=_worker_ids(message.read_ct, ""),
    )
    task_started.send(type(backend), task_result=result)
    try:
        if task.takes_context:
            value = task.call(TaskContext(task_result=result), *args, **kwargs)
        else:
            value = task.call(*args, **kwargs)
        if value is not None:
            serialize_payload(value)  # the return value is stored as JSON, or the task fails
    except BaseException:
        object.__setattr__(result, "status", TaskResultStatus.FAILED)
        task_finished.send(type(backend), task_result=result)
        raise
    object.__setattr__(result, "status", TaskResultStatus.SUCCESSFUL)
    object.__setattr__(result, "_return_value", value)
    task_finished.send(type(backend), task_result=result)
    return value


def register_handlers() -> None:
    """Register :func:`run_task` for the queues of every PgqrsBackend in ``TASKS`` (called
    when Django starts, so ``pgqrs_worker`` serves them without importing the tasks)."""
    for alias, params in (getattr(settings, "TASKS", None) or {}).items():
        try:
            backend_class = import_string(params["BACKEND"])
        except (ImportError, KeyError, TypeError):
            continue  # the framework reports a broken TASKS entry itself
        if isinstance(backend_class, type) and issubclass(backend_class, PgqrsBackend):
            for name in queues_of(alias, params):
                registry.register(name, run_task)
