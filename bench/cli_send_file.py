"""Time ``manage.py pgqrs message send QUEUE --file PATH`` on a large file.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \
        .venv/bin/python bench/cli_send_file.py [--lines 100000] [--batch-size 1000]

Creates (and drops afterwards) a scratch database ``pgqrs_bench_cli`` on that server, writes a
JSON-lines file of small payloads, and runs the CLI in a child process the way an operator
would, printing the wall time and the rate. Without DATABASE_URL an embedded PostgreSQL is
started.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATABASE = "pgqrs_bench_cli"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args()

    from pgqrs_django import embedded

    server = os.environ.get("DATABASE_URL") or embedded.start_temporary()
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
        conn.execute(f"CREATE DATABASE {DATABASE}")
    env = dict(os.environ)
    env.update(
        DATABASE_URL=embedded.with_database(server, DATABASE),
        DJANGO_SETTINGS_MODULE="tests.settings",
        PYTHONPATH=str(ROOT),
    )

    def cli(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "django", "pgqrs", *argv],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )

    try:
        cli("install")
        cli("queue", "create", "bench")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "payloads.jsonl"
            with path.open("w") as out:
                for i in range(args.lines):
                    payload = {"n": i, "to": f"user{i}@example.com", "tags": ["a", "b"]}
                    out.write(json.dumps(payload) + "\n")
            size = path.stat().st_size
            started = time.perf_counter()
            done = cli(
                "message",
                "send",
                "bench",
                "--file",
                str(path),
                "--batch-size",
                str(args.batch_size),
                "--format",
                "json",
            )
            elapsed = time.perf_counter() - started
        sent = json.loads(done.stdout)["sent"]
        assert sent == args.lines, done.stdout
        print(
            f"message send --file: {sent:,} lines ({size / 1e6:.1f} MB), batch size "
            f"{args.batch_size}: {elapsed:.2f} s wall ({sent / elapsed:,.0f} messages/s), "
            "process start included"
        )
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")


if __name__ == "__main__":
    main()
