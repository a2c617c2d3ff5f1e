"""Benchmarks for pgqrs_django (not tests: they measure, they do not assert timings).

- ``python -m bench.latency``: enqueue-to-handler-start latency of an idle worker, with
  LISTEN/NOTIFY and with polling only.
- ``python -m bench.drain``: drain throughput of a backlog through ``pgqrs_worker`` processes.

Both run against ``DATABASE_URL`` (a scratch database is created and dropped on that server)
or, without it, against an embedded PostgreSQL started for the run.
"""
