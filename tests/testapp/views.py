"""An async view that drives the whole pgqrs API through its async twins (test_async.py
calls it with Django's AsyncClient)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.utils import timezone

from pgqrs_django import Consumer, PgqrsAdmin, Producer


async def async_api_tour(request: HttpRequest) -> JsonResponse:
    """Await every async twin of Producer, Consumer and PgqrsAdmin once, in a realistic
    order; answer with the twins awaited and what they returned."""
    awaited: list[str] = []
    seen: dict[str, Any] = {}

    async def call(obj: Any, method: str, /, *args: Any, **kwargs: Any) -> Any:
        awaited.append(f"{type(obj).__name__}.a{method}")
        return await getattr(obj, f"a{method}")(*args, **kwargs)

    admin = PgqrsAdmin()
    await call(admin, "uninstall")
    await call(admin, "install")
    seen["verify"] = (await call(admin, "verify")).ok
    await call(admin, "create_queue", "tour")
    await call(admin, "create_queue", "tour-scratch")
    seen["queue"] = (await call(admin, "get_queue", "tour")).name
    seen["queues"] = [q.name for q in await call(admin, "list_queues")]

    producer = Producer("tour")
    first = await call(producer, "enqueue", {"n": 1}, priority=9)
    await call(producer, "batch_enqueue", [{"n": n} for n in range(2, 9)])
    delayed = await call(producer, "enqueue_delayed", {"n": "later"}, 3600)
    await call(producer, "enqueue_at", {"n": "tomorrow"}, timezone.now() + dt.timedelta(days=1))
    seen["producer_extend"] = await call(producer, "extend_visibility", delayed, 60)

    worker = await call(admin, "register_worker", ["tour"], name="tour-worker")
    consumer = Consumer("tour", worker)
    one = await call(consumer, "dequeue")
    seen["first_claimed"] = one.id == first.id
    seen["extend"] = await call(consumer, "extend_visibility", one, 30)
    seen["archive"] = await call(consumer, "archive", one, result={"n": 1})
    two = await call(consumer, "dequeue_batch", 2)
    seen["extend_batch"] = await call(consumer, "extend_visibility_batch", two, 30)
    seen["archive_batch"] = await call(consumer, "archive_batch", two)
    done, claimed = await call(consumer, "archive_and_dequeue_batch", [], n=4)
    seen["archive_and_dequeue"] = [done, len(claimed)]
    seen["delete"] = await call(consumer, "delete", claimed[0])
    seen["delete_batch"] = await call(consumer, "delete_batch", [claimed[1]])
    seen["release"] = await call(consumer, "release", claimed[2])
    seen["release_batch"] = await call(consumer, "release_batch", [claimed[3]])
    failing = await call(consumer, "dequeue")
    seen["fail"] = await call(consumer, "fail", failing, "boom", retry=False)  # archived

    await call(admin, "heartbeat", worker)
    seen["workers"] = [w.name for w in await call(admin, "list_workers", "tour")]
    await call(admin, "get_worker", "tour-worker")
    await call(admin, "suspend_worker", "tour-worker")
    await call(admin, "resume_worker", "tour-worker")
    seen["shutdown"] = (await call(admin, "shutdown_worker", "tour-worker")).shutdown_requested
    seen["stale"] = len(await call(admin, "stale_workers"))
    seen["health"] = (await call(admin, "health")).running_workers
    await call(admin, "reclaim")
    seen["released_by_stop"] = await call(admin, "stop_worker", worker)
    seen["purged_workers"] = await call(admin, "purge_old_workers", 0)

    metrics = await call(admin, "queue_metrics", "tour")
    seen["metrics"] = {"ready": metrics.ready, "archived": metrics.archived}
    seen["all_metrics"] = len(await call(admin, "all_queues_metrics"))
    await call(admin, "throughput")
    seen["stats"] = (await call(admin, "system_stats")).as_dict()["queues"]
    archived = await call(admin, "get_message", "tour", first.id, archived=True)
    seen["archived_first"] = archived.result
    seen["archive_list"] = len(await call(admin, "list_archive", "tour"))
    seen["released"] = await call(admin, "release_messages", "tour")
    seen["cancelled"] = await call(admin, "cancel_messages", "tour", [delayed.id], "no need")
    seen["replayed"] = (await call(admin, "replay_dead", "tour", failing.id)).id == failing.id
    seen["deleted"] = await call(admin, "delete_messages", "tour", [failing.id])
    await call(admin, "pause_queue", "tour")
    await call(admin, "resume_queue", "tour")
    seen["purged"] = await call(admin, "purge_queue", "tour")
    seen["purged_archive"] = await call(admin, "purge_archive", "tour")
    seen["dropped"] = await call(admin, "delete_queue", "tour-scratch")
    return JsonResponse({"awaited": awaited, "seen": seen})
