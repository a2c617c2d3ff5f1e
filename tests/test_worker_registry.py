"""Handler registration, autodiscovery of jobs.py, and ``--handler`` resolution."""

from __future__ import annotations

import types
from collections.abc import Iterator

import pytest

import pgqrs_django
from pgqrs_django import registry
from pgqrs_django.exceptions import InvalidInput, InvalidQueueName
from pgqrs_django.models import Message
from tests.testapp import jobs


@pytest.fixture
def clean_queue() -> Iterator[str]:
    """A queue name no test handler uses, unregistered afterwards."""
    yield "registry-test"
    registry.unregister("registry-test")


def test_autodiscovery_imported_the_test_apps_jobs_module() -> None:
    found = registry.registered()
    assert found["work"].func is jobs.work and not found["work"].is_async
    assert found["work-async"].func is jobs.work_async and found["work-async"].is_async
    assert found["fail-sync"].path == "tests.testapp.jobs.fail_sync"


def test_the_decorator_is_exported_lazily_and_returns_the_function(clean_queue: str) -> None:
    assert pgqrs_django.handler is registry.handler

    @pgqrs_django.handler(clean_queue)
    async def handle(message: Message) -> None:
        return None

    assert registry.get(clean_queue) == registry.Handler(clean_queue, handle, True)
    assert isinstance(handle, types.FunctionType)  # unchanged, still callable directly


def test_registering_the_same_function_again_is_harmless(clean_queue: str) -> None:
    registry.register(clean_queue, jobs.record)
    registry.register(clean_queue, jobs.record)
    assert registry.get(clean_queue).func is jobs.record  # type: ignore[union-attr]


def test_a_second_function_for_a_queue_is_refused(clean_queue: str) -> None:
    registry.register(clean_queue, jobs.record)
    with pytest.raises(InvalidInput, match=r"already has the handler tests\.testapp\.jobs\.record"):
        registry.register(clean_queue, jobs.trivial)
    assert registry.unregister(clean_queue).func is jobs.record  # type: ignore[union-attr]
    assert registry.get(clean_queue) is None


def test_invalid_registrations_are_refused() -> None:
    with pytest.raises(InvalidQueueName):
        registry.handler("no spaces")
    with pytest.raises(InvalidInput, match="must be callable"):
        registry.register("registry-test", "not a function")  # type: ignore[arg-type]


def test_async_callable_objects_count_as_async(clean_queue: str) -> None:
    class Callable:
        async def __call__(self, message: Message) -> None:
            return None

    assert registry.register(clean_queue, Callable()).is_async


def test_resolve_uses_registered_handlers_and_serves_them_all_by_default() -> None:
    chosen = registry.resolve(["work", "fail-async"])
    assert [(q, h.func) for q, h in chosen.items()] == [
        ("work", jobs.work),
        ("fail-async", jobs.fail_async),
    ]
    assert set(registry.resolve([])) == set(registry.registered())


def test_resolve_with_a_function_path_handles_every_given_queue() -> None:
    chosen = registry.resolve(["alpha", "beta"], ["tests.testapp.jobs.record"])
    assert {q: h.func for q, h in chosen.items()} == {"alpha": jobs.record, "beta": jobs.record}


def test_resolve_with_queue_equals_path_adds_that_queue() -> None:
    chosen = registry.resolve(["work"], ["other=tests.testapp.jobs.trivial"])
    assert {q: h.func for q, h in chosen.items()} == {"work": jobs.work, "other": jobs.trivial}
    # An explicit handler wins over the registered one.
    assert registry.resolve([], ["work=tests.testapp.jobs.record"])["work"].func is jobs.record


def test_resolve_with_a_module_path_imports_it() -> None:
    chosen = registry.resolve(["work"], ["tests.testapp.jobs"])
    assert chosen["work"].func is jobs.work


@pytest.mark.parametrize(
    ("queues", "specs", "message"),
    [
        (["nobody-handles-this"], [], "no handler for queue 'nobody-handles-this'"),
        ([], ["tests.testapp.jobs.record"], "no --queue is given"),
        (["work"], ["tests.testapp.jobs.missing"], "cannot import 'tests.testapp.jobs.missing'"),
        (["work"], ["no_such_package.jobs"], "cannot import 'no_such_package.jobs'"),
        (["work"], ["work=tests.testapp.jobs"], "is a module, not a function"),
        (["work"], ["tests.testapp.models.Execution.objects"], "cannot import"),
        (["bad name"], [], "invalid queue name"),
    ],
)
def test_resolve_errors_are_clear(queues: list[str], specs: list[str], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        registry.resolve(queues, specs)


def test_resolve_with_nothing_registered_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_handlers", {})
    with pytest.raises(InvalidInput, match="no queue to serve"):
        registry.resolve([])


def test_a_module_that_fails_to_import_reports_its_own_error(tmp_path, monkeypatch) -> None:
    (tmp_path / "broken_jobs.py").write_text("import no_such_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(InvalidInput, match="No module named 'no_such_dependency'"):
        registry.resolve(["work"], ["broken_jobs"])
