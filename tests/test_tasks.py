"""The Django Tasks backend (``pgqrs_django.tasks.PgqrsBackend``) against the contract
Django's documentation gives a backend: validation, enqueue, results, async, defer,
priority, errors, plus ``ENQUEUE_ON_COMMIT``. The same tests run on Django 5.2 with the
django-tasks backport and on Django 6.1 with ``django.tasks`` (tox). Transactions are
opened on the pgqrs database (``PGQRS["DATABASE"]``), the one the enqueue writes to.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from pgqrs_django import Consumer, PgqrsAdmin, Producer, conf, registry
from pgqrs_django.exceptions import InvalidInput, PayloadNotSerializable, PgqrsError
from pgqrs_django.models import Archive, Message
from pgqrs_django.tasks import (
    InvalidTask,
    PgqrsBackend,
    TaskNotCompleted,
    TaskQueueMissing,
    TaskResultDoesNotExist,
    TaskResultStatus,
    framework,
    run_task,
    task_enqueued,
    task_error,
    task_finished,
    task_started,
)
from pgqrs_django.worker import WorkerOptions, WorkerRuntime
from tests.conftest import in_other_connection
from tests.testapp import tasks
from tests.testapp.models import Execution
from tests.worker_support import WorkerProcess

if settings.TASKS_FRAMEWORK == "django.tasks":
    from django.tasks import default_task_backend, task, task_backends
else:
    from django_tasks import default_task_backend, task, task_backends


@pytest.fixture
def queues(db: None) -> None:
    """The two task queues of TASKS["default"]: one delivery each (a failure is final)."""
    PgqrsAdmin().create_queue("default", max_attempts=1)
    PgqrsAdmin().create_queue("tasks-other", max_attempts=1)


def burst(*queues: str, **options: Any) -> WorkerRuntime:
    """Run a burst worker in this process until the queues have nothing ready."""
    runtime = WorkerRuntime(
        WorkerOptions(queues=list(queues) or ["default"], burst=True, poll_interval=0.2, **options)
    )
    assert runtime.run() == 0
    return runtime


def seen_by_another_connection(msg_id: int) -> bool:
    """Whether a message row is visible (committed) from another database connection."""
    return bool(in_other_connection(Message.objects.filter(pk=msg_id).exists))


def module_level() -> None:
    pass


# -- the backend and its configuration ---------------------------------------------------


def test_the_backend_runs_on_the_framework_of_this_django_version() -> None:
    backend = task_backends["default"]
    assert isinstance(backend, PgqrsBackend) and default_task_backend.alias == "default"
    assert framework() == settings.TASKS_FRAMEWORK
    assert backend.supports_defer and backend.supports_async_task
    assert backend.supports_get_result and backend.supports_priority
    assert backend.queues == {"default", "tasks-other", "emails"}
    # pgqrs_worker serves the backend's queues with the task runner, no jobs.py needed.
    assert registry.get("default").func is run_task  # type: ignore[union-attr]
    assert registry.get("tasks-other").func is run_task  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"QUEUES": []}, "must list the pgqrs queues"),
        ({"QUEUES": ["bad name"]}, "invalid queue name 'bad name'"),
        ({"QUEUES": ["default"], "OPTIONS": {"ENQUEUE_ONCOMMIT": True}}, "unknown keys"),
    ],
)
def test_a_broken_configuration_is_refused(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        PgqrsBackend("broken", {"BACKEND": "pgqrs_django.tasks.PgqrsBackend", **params})


def test_a_task_queue_cannot_also_have_a_handler() -> None:
    registry.register("tasks-conflict", module_level)
    try:
        with pytest.raises(InvalidInput, match=r"already has the handler .*run_task"):
            PgqrsBackend("conflict", {"QUEUES": ["tasks-conflict"]})
    finally:
        registry.unregister("tasks-conflict")


def test_validate_task_refuses_what_the_framework_forbids() -> None:
    def local() -> None:
        pass

    with pytest.raises(InvalidTask, match="module level"):
        task(local)
    with pytest.raises(InvalidTask, match="priority must be a whole number between -100"):
        tasks.add.using(priority=101)
    with pytest.raises(InvalidTask, match="priority"):
        tasks.add.using(priority=-101)
    with pytest.raises(InvalidTask, match="Queue 'elsewhere' is not valid"):
        tasks.add.using(queue_name="elsewhere")
    with pytest.raises(InvalidTask, match="aware"):
        tasks.add.using(run_after=dt.datetime(2030, 1, 1))
    with pytest.raises(InvalidTask, match="first argument of 'context'"):
        task(takes_context=True)(module_level)
    # The framework's exception class, whichever framework this is.
    assert InvalidTask.__module__.startswith(settings.TASKS_FRAMEWORK)


# -- enqueue and results -----------------------------------------------------------------


def test_enqueue_writes_a_message_and_returns_a_ready_result(queues: None) -> None:
    result = tasks.shout.enqueue("hi", times=2)
    assert result.status == TaskResultStatus.READY and not result.is_finished
    assert (result.args, result.kwargs, result.backend) == (["hi"], {"times": 2}, "default")
    assert result.errors == [] and result.worker_ids == [] and result.attempts == 0
    assert result.enqueued_at is not None and result.started_at is None
    with pytest.raises(ValueError, match="not finished"):
        result.return_value  # noqa: B018

    message = Message.objects.get()
    assert result.id == str(message.id)
    assert message.queue.name == "tasks-other" and message.priority == 10
    assert message.payload == {
        "django_task": "tests.testapp.tasks.shout",
        "backend": "default",
        "queue_name": "tasks-other",
        "run_after": None,
        "args": ["hi"],
        "kwargs": {"times": 2},
    }
    for found in (default_task_backend.get_result(result.id), tasks.shout.get_result(result.id)):
        assert found.id == result.id and found.status == TaskResultStatus.READY
        assert found.task.func is tasks.shout.func and found.task.priority == 10
        assert found.task.queue_name == "tasks-other"
        assert (found.args, found.kwargs) == (["hi"], {"times": 2})
        assert found.enqueued_at == message.enqueued_at


def test_unknown_result_ids_raise_the_frameworks_exception(queues: None) -> None:
    plain = Producer("default").enqueue({"not": "a task"})
    for unknown in ("nope", "", str(plain.id), "987654321"):
        with pytest.raises(TaskResultDoesNotExist):
            default_task_backend.get_result(unknown)
    assert TaskResultDoesNotExist.__module__.startswith(settings.TASKS_FRAMEWORK)


def test_arguments_must_be_json_and_the_queue_must_exist(queues: None) -> None:
    with pytest.raises(PayloadNotSerializable, match="not JSON-serialisable"):
        tasks.add.enqueue({1, 2}, 3)
    PgqrsAdmin().delete_queue("tasks-other")
    with pytest.raises(TaskQueueMissing, match=r"queue 'tasks-other' does not exist.*pgqrs queue"):
        tasks.shout.enqueue("hi")
    assert not Message.objects.exists()


def test_priority_maps_to_the_message_priority(queues: None) -> None:
    ids = {p: tasks.add.using(priority=p).enqueue(1, 1).id for p in (-100, 0, 100)}
    assert {str(m.id): m.priority for m in Message.objects.all()} == {v: k for k, v in ids.items()}


def test_run_after_defers_the_message(queues: None) -> None:
    when = timezone.now() + dt.timedelta(hours=2)
    result = tasks.add.using(run_after=when).enqueue(2, 3)
    message = Message.objects.get()
    assert message.vt == when
    assert not Message.objects.ready().exists()
    found = default_task_backend.get_result(result.id)
    assert found.task.run_after == when and found.status == TaskResultStatus.READY
    assert Consumer("default").dequeue() is None  # not before run_after


def test_async_enqueue_get_result_and_refresh(queues: None) -> None:
    async def scenario() -> tuple[Any, Any]:
        result = await tasks.add_async.aenqueue(2, 5)
        found = await default_task_backend.aget_result(result.id)
        again = await tasks.add_async.aget_result(result.id)
        await found.arefresh()
        return result, (found, again)

    result, (found, again) = async_to_sync(scenario)()
    assert found.id == again.id == result.id == str(Message.objects.get().id)
    assert found.status == TaskResultStatus.READY and found.args == [2, 5]


def test_a_claimed_task_is_running(queues: None) -> None:
    result = tasks.add.enqueue(1, 2)
    worker = PgqrsAdmin().register_worker(["default"], name="host-1")
    Consumer("default", worker).dequeue(lock_time=60)
    found = default_task_backend.get_result(result.id)
    assert found.status == TaskResultStatus.RUNNING
    assert found.started_at is not None and found.last_attempted_at is not None
    assert found.worker_ids == ["host-1"] and found.attempts == 1


# -- running tasks: pgqrs_worker -----------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_pgqrs_worker_runs_tasks_and_results_come_back(
    queues: None, start_worker: Callable[..., WorkerProcess]
) -> None:
    added = tasks.add.enqueue(2, 3)
    shouted = tasks.shout.enqueue("hey")
    in_async = tasks.add_async.enqueue(4, 5)
    recorded = tasks.record.enqueue("ctx")
    failed = tasks.fail.enqueue("no data")
    builtin = tasks.fail_builtin.enqueue()
    odd = tasks.not_json.enqueue()
    worker = start_worker("--burst", "--queue", "default", "--queue", "tasks-other")
    assert worker.wait(120) == 0, worker.log()
    assert not Message.objects.exists()

    added.refresh()  # the result object the caller kept
    assert added.status == TaskResultStatus.SUCCESSFUL and added.is_finished
    assert added.return_value == 5 and added.errors == []
    assert added.enqueued_at <= added.started_at <= added.finished_at  # type: ignore[operator]
    assert added.last_attempted_at is not None
    worker_name = Archive.objects.get(pk=added.id).worker_name
    assert added.worker_ids == [worker_name] and added.attempts == 1
    assert default_task_backend.get_result(shouted.id).return_value == "HEY!"
    assert tasks.add_async.get_result(in_async.id).return_value == {"sum": 9, "async": True}
    assert tasks.record.get_result(recorded.id).return_value == {
        "label": "ctx",
        "id": recorded.id,
        "attempt": 1,
        "status": "RUNNING",
    }

    failure = tasks.fail.get_result(failed.id)
    assert failure.status == TaskResultStatus.FAILED and failure.finished_at is not None
    with pytest.raises(ValueError, match="failed"):
        failure.return_value  # noqa: B018
    [error] = failure.errors
    assert error.exception_class_path == "tests.testapp.tasks.ReportError"
    assert error.exception_class is tasks.ReportError
    assert error.traceback.startswith("Traceback (most recent call last):")
    assert "report failed: no data" in error.traceback and "def fail" not in error.traceback
    [error] = default_task_backend.get_result(builtin.id).errors
    assert error.exception_class is ValueError and "line two" in error.traceback
    [error] = default_task_backend.get_result(odd.id).errors
    assert error.exception_class is PayloadNotSerializable


@pytest.mark.django_db(transaction=True)
def test_the_worker_runs_tasks_in_priority_order(queues: None) -> None:
    ids = [
        tasks.record.using(priority=priority).enqueue(label).id
        for label, priority in (("low", -50), ("mid", 0), ("high", 100), ("mid2", 0))
    ]
    burst("default", concurrency=1, batch_size=1)
    ran = [str(e.msg_id) for e in Execution.objects.order_by("id")]
    assert ran == [ids[2], ids[1], ids[3], ids[0]]


@pytest.mark.django_db(transaction=True)
# The retry stays out of this burst.
@override_settings(PGQRS={**settings.PGQRS, "RETRY_BACKOFF_BASE": 3600.0})
def test_a_failure_with_attempts_left_is_ready_again_with_its_error(db: None) -> None:
    PgqrsAdmin().create_queue("default", max_attempts=3)
    result = tasks.fail.enqueue("flaky")
    burst("default")
    result.refresh()
    assert result.status == TaskResultStatus.READY and result.attempts == 1
    [error] = result.errors
    assert error.exception_class is tasks.ReportError and "flaky" in error.traceback


@pytest.mark.django_db(transaction=True)
def test_the_worker_refuses_messages_that_are_not_tasks_of_this_backend(queues: None) -> None:
    producer = Producer("default")
    foreign = producer.enqueue({"django_task": "tests.testapp.tasks.elsewhere", "args": []})
    missing = producer.enqueue({"django_task": "tests.testapp.tasks.nothing_here"})
    plain = producer.enqueue({"job": "not a task"})
    function = producer.enqueue({"django_task": "tests.testapp.tasks.ReportError"})
    runtime = burst("default")
    assert runtime.failed == 4
    errors = dict(Archive.objects.values_list("id", "error"))
    assert "belongs to TASKS['dummy']" in errors[foreign.id]
    assert "not to a PgqrsBackend" in errors[foreign.id]
    assert "cannot import task 'tests.testapp.tasks.nothing_here'" in errors[missing.id]
    assert "is not a Django task" in errors[plain.id]
    assert "is not a task (decorate the function with @task)" in errors[function.id]
    with pytest.raises(TaskResultDoesNotExist, match="belongs to TASKS"):
        default_task_backend.get_result(str(foreign.id))


def test_a_cancelled_task_failed_without_an_exception_of_its_own(queues: None) -> None:
    result = tasks.add.enqueue(1, 1)
    PgqrsAdmin().cancel_messages("default", [int(result.id)], reason="not needed any more")
    found = default_task_backend.get_result(result.id)
    assert found.status == TaskResultStatus.FAILED and found.attempts == 0
    [error] = found.errors
    assert error.exception_class is TaskNotCompleted and error.traceback == "not needed any more"
    assert issubclass(TaskNotCompleted, PgqrsError)


def test_an_error_without_a_class_is_a_task_not_completed() -> None:
    assert task_error("Traceback ...", "builtins.OSError").exception_class is OSError
    error = task_error("delivered 6 times, over max_attempts=5", "")
    assert error.exception_class_path == "pgqrs_django.tasks.TaskNotCompleted"
    assert error.traceback == "delivered 6 times, over max_attempts=5"


# -- ENQUEUE_ON_COMMIT ---------------------------------------------------------------------

ON_COMMIT = {
    "default": {
        "BACKEND": "pgqrs_django.tasks.PgqrsBackend",
        "QUEUES": ["default", "tasks-other", "emails"],
        "OPTIONS": {"ENQUEUE_ON_COMMIT": True},
    }
}


@pytest.mark.django_db(transaction=True)
def test_enqueue_on_commit_inserts_the_message_when_the_transaction_commits(
    queues: None,
) -> None:
    with override_settings(TASKS=ON_COMMIT):
        assert task_backends["default"].enqueue_on_commit
        with transaction.atomic(using=conf.database()):
            result = tasks.add.enqueue(1, 2)
            assert result.id.isdigit() and result.enqueued_at is None
            assert not Message.objects.filter(pk=result.id).exists()  # not even for us
            with pytest.raises(TaskResultDoesNotExist):
                default_task_backend.get_result(result.id)
        assert seen_by_another_connection(int(result.id))
        result.refresh()
        assert result.status == TaskResultStatus.READY and result.enqueued_at is not None
        message = Message.objects.get(pk=result.id)
        assert (message.priority, message.queue.name) == (0, "default")

        with transaction.atomic(using=conf.database()):
            dropped = tasks.add.enqueue(3, 4)
            transaction.set_rollback(True, using=conf.database())
        with pytest.raises(TaskResultDoesNotExist):
            default_task_backend.get_result(dropped.id)

        later = timezone.now() + dt.timedelta(hours=1)
        with transaction.atomic(using=conf.database()):
            deferred = tasks.shout.using(run_after=later).enqueue("x")
        assert Message.objects.get(pk=deferred.id).vt == later
        # Outside a transaction there is nothing to wait for.
        direct = tasks.add.enqueue(5, 6)
        assert direct.enqueued_at is not None and seen_by_another_connection(int(direct.id))
    burst("default", "tasks-other")
    assert tasks.add.get_result(result.id).return_value == 3


@pytest.mark.django_db(transaction=True)
def test_without_enqueue_on_commit_the_message_is_written_inside_the_transaction(
    queues: None,
) -> None:
    assert not task_backends["default"].enqueue_on_commit
    with transaction.atomic(using=conf.database()):
        result = tasks.add.enqueue(1, 2)
        # Written at once in our transaction, invisible to others until it commits.
        assert Message.objects.filter(pk=result.id).exists()
        assert default_task_backend.get_result(result.id).status == TaskResultStatus.READY
        assert not seen_by_another_connection(int(result.id))
    assert seen_by_another_connection(int(result.id))
    with transaction.atomic(using=conf.database()):
        dropped = tasks.add.enqueue(3, 4)
        transaction.set_rollback(True, using=conf.database())
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result(dropped.id)


def test_a_task_payload_runs_in_process_too(queues: None) -> None:
    """run_task is a plain handler: called with a claimed message it runs the task."""
    tasks.add.enqueue(20, 22)
    message = Consumer("default").dequeue()
    assert message is not None and run_task(message) == 42


@pytest.mark.django_db(transaction=True)
def test_the_frameworks_signals_are_sent(queues: None) -> None:
    names = {task_enqueued: "enqueued", task_started: "started", task_finished: "finished"}
    sent: list[tuple[str, str, str]] = []

    def receiver(signal: Any, sender: type, task_result: Any, **kwargs: Any) -> None:
        sent.append((names[signal], task_result.id, str(task_result.status)))

    for signal in names:
        signal.connect(receiver)
    try:
        with transaction.atomic(using=conf.database()):
            ok = tasks.add.enqueue(1, 2)
            bad = tasks.fail.enqueue("signal")
            assert sent == []  # task_enqueued waits for the commit
        assert sent == [("enqueued", ok.id, "READY"), ("enqueued", bad.id, "READY")]
        burst("default", concurrency=1, batch_size=1)
    finally:
        for signal in names:
            signal.disconnect(receiver)
    assert sent[2:] == [
        ("started", ok.id, "RUNNING"),
        ("finished", ok.id, "SUCCESSFUL"),
        ("started", bad.id, "RUNNING"),
        ("finished", bad.id, "FAILED"),
    ]
