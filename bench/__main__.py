"""The benchmark: ``python -m bench [--quick] [--no-peers] [--json PATH]`` (``make bench``).

One run, one PostgreSQL server (``DATABASE_URL``'s, or 127.0.0.1:5432 as postgres): pgqrs and
the SQL floor in database ``pgqrs_bench``, each peer in ``pgqrs_bench_<peer>``, all created
afresh. Measures enqueue throughput, drain throughput of a backlog (processes x batch size),
enqueue-to-start latency, and scale (archive size, other queues' rows, worker memory), for
pgqrs (``pgqrs_worker``'s runtime and the Consumer API) and, on the same workloads, the
hand-written psycopg floor, PGQueuer, procrastinate and django-tasks-db. Prints a table,
writes JSON (``bench/results/latest.json``), and exits non-zero if any path errors or loses a
message.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import latency
from bench.common import (
    DATABASE,
    ROOT,
    BenchError,
    database_url,
    drop_database,
    fresh_database,
    parallel_drain,
    run_action,
    setup_django,
)

QUEUE = "bench-drain"
PEERS = ("pgqueuer", "procrastinate", "djtasks")
LABELS = {
    "worker": "pgqrs_worker",
    "consumer": "Consumer API",
    "floor": "SQL floor",
    "pgqueuer": "PGQueuer",
    "procrastinate": "procrastinate",
    "djtasks": "django-tasks-db",
}


@dataclasses.dataclass
class Sizes:
    single: int  # single enqueues timed
    batched: int  # messages per batch_enqueue size timed
    backlog: int  # drain backlog
    backlog_batch1: int  # drain backlog at batch size 1
    processes: tuple[int, ...]
    batches: tuple[int, ...]
    slow_backlog: int  # procrastinate and django-tasks-db (one job per fetch)
    latency_samples: int
    polling_samples: int
    poll_interval: float
    archive_small: int
    archive_large: int
    ahead: int
    scale_backlog: int
    rss_messages: int


FULL = Sizes(
    single=1000,
    batched=20_000,
    backlog=10_000,
    backlog_batch1=1000,
    processes=(1, 2, 4),
    batches=(1, 10, 50),
    slow_backlog=1000,
    latency_samples=200,
    polling_samples=30,
    poll_interval=1.0,
    archive_small=10_000,
    archive_large=1_000_000,
    ahead=100_000,
    scale_backlog=20_000,
    rss_messages=200_000,
)
QUICK = Sizes(
    single=100,
    batched=2000,
    backlog=1000,
    backlog_batch1=300,
    processes=(2,),
    batches=(1, 50),
    slow_backlog=100,
    latency_samples=8,
    polling_samples=3,
    poll_interval=0.2,
    archive_small=1000,
    archive_large=20_000,
    ahead=2000,
    scale_backlog=2000,
    rss_messages=5000,
)


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# -- pgqrs side: database state -----------------------------------------------------------------


def execute(statement: str, params: Any = None) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def scalar(statement: str, params: Any = None) -> Any:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchone()[0]


def reset_pgqrs() -> None:
    """Empty every pgqrs table but the queues, and refresh the statistics."""
    from pgqrs_django.models import Worker

    execute("TRUNCATE pgqrs_message, pgqrs_archive")
    Worker.objects.all().delete()
    execute("VACUUM ANALYZE pgqrs_message")
    execute("VACUUM ANALYZE pgqrs_archive")


def fill_pgqrs(queue: str, messages: int) -> None:
    from django.db import transaction

    from pgqrs_django import Producer

    producer = Producer(queue)
    with transaction.atomic():
        for start in range(0, messages, 5000):
            producer.batch_enqueue([{"n": i} for i in range(start, min(messages, start + 5000))])
    execute("VACUUM ANALYZE pgqrs_message")


FILL_ARCHIVE = """
INSERT INTO pgqrs_archive
    (id, queue_id, payload, priority, enqueued_at, vt, read_ct, dequeued_at, dedupe_key,
     archived_at, outcome, duration, worker_name, error, result)
SELECT nextval(pg_get_serial_sequence('pgqrs_message', 'id')), %s, jsonb_build_object('n', g),
       0, now(), now(), 1, now(), NULL, now(), 'succeeded', 0.001, 'filler', '', NULL
FROM generate_series(1, %s) AS g
"""


def verify_pgqrs(queue: str, messages: int, handled: int, archive_before: int = 0) -> None:
    from pgqrs_django.models import Archive, Message

    left = Message.objects.for_queue(queue).count()
    rows = Archive.objects.for_queue(queue).exclude(worker_name="filler")
    archived, succeeded = rows.count(), rows.succeeded().count()
    if left or archived != messages or succeeded != messages or handled != messages:
        raise BenchError(
            f"lost or repeated messages: sent {messages}, handled {handled}, archived "
            f"{archived} ({succeeded} succeeded), {left} left in the queue"
        )


def verify_floor(messages: int, handled: int) -> None:
    left = scalar("SELECT count(*) FROM pgqrs_message")
    if left or handled != messages:
        raise BenchError(f"floor: sent {messages}, handled {handled}, {left} left")


# -- the measurements ---------------------------------------------------------------------------


class Bench:
    def __init__(self, sizes: Sizes, peers: tuple[str, ...]) -> None:
        self.sizes = sizes
        self.peers = peers
        self.url = ""
        self.peer_urls: dict[str, str] = {}
        self.queue_id = 0
        self.out: dict[str, Any] = {}

    def setup(self) -> None:
        self.url = fresh_database(DATABASE)
        setup_django(self.url)
        from pgqrs_django import PgqrsAdmin

        admin = PgqrsAdmin()
        self.queue_id = admin.create_queue(QUEUE, visibility_timeout=60).pk
        admin.create_queue("bench-ahead")
        admin.create_queue(latency.QUEUE)
        for peer in self.peers:
            self.peer_urls[peer] = fresh_database(f"{DATABASE}_{peer}")
            run_action({"system": peer, "action": "setup", "db": self.peer_urls[peer]})

    def teardown(self) -> None:
        from django.db import connections

        connections.close_all()
        for peer in self.peers:
            drop_database(f"{DATABASE}_{peer}")

    # enqueue ---------------------------------------------------------------------------------

    def enqueue(self) -> None:
        from bench import floor
        from pgqrs_django import Producer

        s = self.sizes
        producer = Producer(QUEUE)
        rows: dict[str, dict[str, float]] = {}
        reset_pgqrs()
        started = time.perf_counter()
        for i in range(s.single):
            producer.enqueue({"n": i})
        ours = {"single": s.single / (time.perf_counter() - started)}
        for size in (100, 1000):
            calls = max(1, s.batched // size)
            started = time.perf_counter()
            for call in range(calls):
                producer.batch_enqueue([{"n": call * size + i} for i in range(size)])
            ours[f"batch_{size}"] = calls * size / (time.perf_counter() - started)
        rows["pgqrs"] = ours
        reset_pgqrs()
        rows["floor"] = {
            f"batch_{size}": floor.insert(self.url, self.queue_id, size, max(1, s.batched // size))
            for size in (100, 1000)
        }
        reset_pgqrs()
        for peer in self.peers:
            rows[peer] = run_action(
                {
                    "system": peer,
                    "action": "enqueue",
                    "db": self.peer_urls[peer],
                    "single": s.single,
                    "batched": s.batched,
                }
            )
        self.out["enqueue"] = rows

    # drain -----------------------------------------------------------------------------------

    def timed_drain(
        self, spec: dict[str, Any], processes: int, messages: int, row: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """Drain with ``processes`` runners; store the rate and the CPU per message (client
        processes, server backends) in ``row`` under the system's name."""
        elapsed, answers, server_cpu = parallel_drain(spec, processes)
        system = spec["system"]
        row[system] = messages / elapsed
        client_cpu = sum(answer["cpu"] for answer in answers)
        row[f"{system}_cpu_us"] = [client_cpu / messages * 1e6, server_cpu / messages * 1e6]
        return answers

    def drain_pgqrs(self, system: str, processes: int, batch: int, row: dict[str, Any]) -> None:
        messages = row["messages"]
        reset_pgqrs()
        fill_pgqrs(QUEUE, messages)
        spec = {"system": system, "action": "drain", "db": self.url, "queue": QUEUE}
        spec |= {"batch": batch, "queue_id": self.queue_id}
        answers = self.timed_drain(spec, processes, messages, row)
        handled = sum(answer["count"] for answer in answers)
        if system == "floor":
            verify_floor(messages, handled)
        else:
            verify_pgqrs(QUEUE, messages, handled)

    def drain_peer(self, peer: str, processes: int, batch: int, row: dict[str, Any]) -> None:
        messages = row["messages"]
        url = self.peer_urls[peer]
        run_action({"system": peer, "action": "fill", "db": url, "messages": messages})
        spec = {"system": peer, "action": "drain", "db": url, "batch": batch}
        answers = self.timed_drain(spec, processes, messages, row)
        handled = sum(answer["count"] for answer in answers)
        state = run_action({"system": peer, "action": "verify", "db": url})
        ok = {"pgqueuer": state.get("left") == 0}.get(peer, True)
        if peer == "procrastinate":
            ok = state == {"succeeded": messages}
        elif peer == "djtasks":
            ok = state == {"SUCCESSFUL": messages}
        if not ok or handled != messages:
            raise BenchError(f"{peer}: sent {messages}, handled {handled}, state {state}")

    def drain(self) -> None:
        s = self.sizes
        rows = []
        for processes in s.processes:
            for batch in s.batches:
                messages = s.backlog_batch1 if batch == 1 else s.backlog
                row: dict[str, Any] = {"processes": processes, "batch": batch}
                row["messages"] = messages
                # Interleaved: ours and the others one after the other on the same config.
                for system in ("worker", "consumer", "floor"):
                    self.drain_pgqrs(system, processes, batch, row)
                if "pgqueuer" in self.peers:
                    self.drain_peer("pgqueuer", processes, batch, row)
                say(f"  drain {processes} x batch {batch}: {_ratios(row)}")
                rows.append(row)
        # The peers that fetch one job at a time: 2 processes, a smaller backlog.
        for peer, concurrency in (("procrastinate", 1), ("djtasks", 1)):
            if peer not in self.peers:
                continue
            processes = 2 if 2 in s.processes else s.processes[0]
            row = {"processes": processes, "batch": 1, "messages": s.slow_backlog}
            self.drain_pgqrs("worker", processes, 1, row)
            self.drain_peer(peer, processes, concurrency, row)
            say(f"  drain {processes} x batch 1 ({peer}): {_ratios(row)}")
            rows.append(row)
        self.out["drain"] = rows

    # latency ---------------------------------------------------------------------------------

    def latency(self) -> None:
        s = self.sizes
        reset_pgqrs()
        listen = latency.measure(s.latency_samples)
        polling = latency.measure(
            s.polling_samples,
            "--no-listen",
            "--poll-interval",
            str(s.poll_interval),
            poll_interval=s.poll_interval,
        )
        self.out["latency"] = [
            latency.summary("LISTEN/NOTIFY", listen),
            latency.summary(f"polling every {s.poll_interval:g}s", polling),
        ]

    # scale -----------------------------------------------------------------------------------

    def scaled_drain(self, archived: int, ahead: int) -> float:
        s = self.sizes
        reset_pgqrs()
        execute(FILL_ARCHIVE, [self.queue_id, archived])
        if ahead:
            fill_pgqrs("bench-ahead", ahead)
        fill_pgqrs(QUEUE, s.scale_backlog)
        execute("VACUUM ANALYZE pgqrs_archive")
        spec = {"system": "worker", "action": "drain", "db": self.url, "queue": QUEUE, "batch": 50}
        elapsed, answers, _ = parallel_drain(spec, 2)
        verify_pgqrs(QUEUE, s.scale_backlog, sum(a["count"] for a in answers))
        return s.scale_backlog / elapsed

    def scale(self) -> None:
        s = self.sizes
        base = self.scaled_drain(s.archive_small, 0)
        large = self.scaled_drain(s.archive_large, 0)
        ahead = self.scaled_drain(s.archive_small, s.ahead)
        say(f"  scale: {base:.0f} / {large:.0f} (archive) / {ahead:.0f} (ahead) msg/s")
        reset_pgqrs()
        fill_pgqrs(QUEUE, s.rss_messages)
        samples: list[float] = []
        spec = {"system": "worker", "action": "drain", "db": self.url, "queue": QUEUE, "batch": 50}
        elapsed, answers, _ = parallel_drain(spec, 1, rss=samples)
        verify_pgqrs(QUEUE, s.rss_messages, answers[0]["count"])
        settled = samples[len(samples) // 10 :] or samples
        self.out["scale"] = {
            "backlog": s.scale_backlog,
            "archive_small": s.archive_small,
            "archive_large": s.archive_large,
            "ahead": s.ahead,
            "drain_archive_small": base,
            "drain_archive_large": large,
            "drain_ahead": ahead,
            "rss_messages": s.rss_messages,
            "rss_msg_per_s": s.rss_messages / elapsed,
            "rss_samples": len(samples),
            "rss_first_mb": samples[0] if samples else None,
            "rss_max_mb": max(samples, default=None),
            "rss_last_mb": samples[-1] if samples else None,
            "rss_spread_after_warmup_mb": max(settled) - min(settled) if settled else None,
        }


def _ratios(row: dict[str, Any]) -> str:
    ours = row["worker"]
    parts = [f"pgqrs_worker {ours:,.0f}/s"]
    for system in ("consumer", "floor", *PEERS):
        if system in row:
            parts.append(f"{LABELS[system]} {row[system]:,.0f}/s ({row[system] / ours:.2f}x)")
    return ", ".join(parts)


# -- the report ---------------------------------------------------------------------------------


def table(out: dict[str, Any]) -> str:
    lines = [f"pgqrs_django benchmark ({out['mode']}), {out['started']}"]
    lines.append(f"machine: {out['machine']}; load before {out['load_before']}")
    lines.append("")
    lines.append("Enqueue (messages/s; ratio = other / pgqrs)")
    enq = out.get("enqueue", {})
    ours = enq.get("pgqrs", {})
    lines.append(f"  {'':<18}{'single':>18}{'batch 100':>18}{'batch 1,000':>18}")
    for who, figures in enq.items():
        cells = []
        for key in ("single", "batch_100", "batch_1000"):
            value = figures.get(key)
            if value is None:
                cells.append(f"{'-':>18}")
            elif who == "pgqrs":
                cells.append(f"{value:>18,.0f}")
            else:
                cells.append(f"{value:>10,.0f} ({value / ours[key]:.2f}x)")
        label = "multi-row INSERT" if who == "floor" else LABELS.get(who, who)
        lines.append(f"  {label:<18}" + "".join(cells))
    lines.append("")
    lines.append("Drain (messages/s from release to last ack; ratio = other / pgqrs_worker)")
    head = f"  {'proc x batch':<13}{'msgs':>7}{'pgqrs_worker':>13}"
    systems = ["consumer", "floor", *PEERS]
    head += "".join(f"{LABELS[s]:>23}" for s in systems)
    lines.append(head)
    for row in out.get("drain", []):
        config = f"{row['processes']} x {row['batch']}"
        cells = f"  {config:<13}{row['messages']:>7}{row['worker']:>13,.0f}"
        for system in systems:
            value = row.get(system)
            cells += (
                f"{'-':>23}" if value is None else f"{value:>14,.0f} ({value / row['worker']:.2f}x)"
            )
        lines.append(cells)
    lines.append("")
    lines.append("Drain CPU per message, microseconds: consumer processes + server backends")
    lines.append(head.replace("  msgs", "      "))
    for row in out.get("drain", []):
        config = f"{row['processes']} x {row['batch']}"
        cells = f"  {config:<13}{'':>7}{_cpu(row.get('worker_cpu_us')):>13}"
        for system in systems:
            cells += f"{_cpu(row.get(f'{system}_cpu_us')):>23}"
        lines.append(cells)
    lines.append("")
    lines.append("Latency, enqueue to handler start (idle pgqrs_worker)")
    for row in out.get("latency", []):
        lines.append(
            f"  {row['mode']:<20} p50 {row['p50_ms']:>8.2f} ms  p95 {row['p95_ms']:>8.2f} ms  "
            f"p99 {row['p99_ms']:>8.2f} ms  ({row['samples']} samples)"
        )
    scale = out.get("scale")
    if scale:
        lines.append("")
        lines.append(f"Scale (pgqrs_worker, 2 processes x batch 50, {scale['backlog']:,} messages)")
        base = scale["drain_archive_small"]
        lines.append(f"  {scale['archive_small']:>9,} archived rows  {base:>9,.0f} msg/s")
        large = scale["drain_archive_large"]
        lines.append(
            f"  {scale['archive_large']:>9,} archived rows  {large:>9,.0f} msg/s "
            f"({large / base:.2f}x)"
        )
        ahead = scale["drain_ahead"]
        lines.append(
            f"  + {scale['ahead']:,} ready rows in another queue  {ahead:>9,.0f} msg/s "
            f"({ahead / base:.2f}x)"
        )
        lines.append(
            f"  worker RSS over {scale['rss_messages']:,} messages (1 process x batch 50, "
            f"{scale['rss_msg_per_s']:,.0f} msg/s): first {scale['rss_first_mb']:.1f} MB, "
            f"max {scale['rss_max_mb']:.1f} MB, last {scale['rss_last_mb']:.1f} MB, spread "
            f"after warm-up {scale['rss_spread_after_warmup_mb']:.1f} MB"
        )
    lines.append("")
    lines.append(f"load after {out.get('load_after', '?')}; {out.get('seconds', 0):.0f} s")
    return "\n".join(lines)


def _cpu(value: list[float] | None) -> str:
    return "-" if value is None else f"{value[0]:.0f} + {value[1]:.0f}"


def versions(peers: tuple[str, ...]) -> dict[str, str]:
    names = {"pgqueuer": "pgqueuer", "procrastinate": "procrastinate", "djtasks": "django-tasks-db"}
    out = {"python": platform.python_version()}
    for package in ("django", "psycopg", *(names[p] for p in peers)):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "missing"
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (CI)")
    parser.add_argument("--no-peers", action="store_true", help="pgqrs and the floor only")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=["enqueue", "drain", "latency", "scale"],
        help="run only these parts",
    )
    parser.add_argument("--processes", type=int, nargs="+", help="drain with these counts")
    parser.add_argument("--batches", type=int, nargs="+", help="drain with these batch sizes")
    parser.add_argument("--backlog", type=int, help="drain backlog (every batch size)")
    parser.add_argument(
        "--json", type=Path, default=ROOT / "bench" / "results" / "latest.json", help="output"
    )
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    # Quick mode (CI, under 2 minutes) keeps one peer: procrastinate and django-tasks-db
    # fetch one job at a time and take most of a quick run's time.
    peers: tuple[str, ...] = () if args.no_peers else ("pgqueuer",) if args.quick else PEERS
    if args.processes:
        sizes = dataclasses.replace(sizes, processes=tuple(args.processes))
    if args.batches:
        sizes = dataclasses.replace(sizes, batches=tuple(args.batches))
    if args.backlog:
        sizes = dataclasses.replace(sizes, backlog=args.backlog, backlog_batch1=args.backlog)
    os.environ.setdefault("PGQRS_LOG_LEVEL", "WARNING")
    bench = Bench(sizes, peers)
    out = bench.out
    out["mode"] = "quick" if args.quick else "full"
    out["started"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    out["load_before"] = load()
    out["sizes"] = dataclasses.asdict(sizes)
    out["server"] = database_url(DATABASE).rsplit("@", 1)[-1]
    began = time.monotonic()
    try:
        bench.setup()
        out["postgresql"] = scalar("SHOW server_version")
        out["machine"] = (
            f"{os.cpu_count()} cores, PostgreSQL {out['postgresql']}, "
            f"Python {platform.python_version()}"
        )
        out["versions"] = versions(peers)
        for part in args.only or ["enqueue", "drain", "latency", "scale"]:
            say(f"== {part} (load {load()}, {time.monotonic() - began:.0f} s)")
            getattr(bench, part)()
    except BenchError as exc:
        print(f"bench: FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        bench.teardown()
    out["load_after"] = load()
    out["seconds"] = time.monotonic() - began
    print(table(out))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2, default=str) + "\n")
    say(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
