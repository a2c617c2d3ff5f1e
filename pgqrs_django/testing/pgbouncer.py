"""Run a throw-away PgBouncer in transaction pooling mode in front of a PostgreSQL server.

The test harness uses it to prove that the API, the CLI and ``pgqrs_worker --no-listen`` work
behind a transaction pooler. It needs Debian's ``pgbouncer`` binary (``apt-get install
pgbouncer``); it listens on a free loopback port and trusts every client, so it is for tests
only.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict

BINARY_CANDIDATES = ("pgbouncer", "/usr/sbin/pgbouncer")


def find_binary() -> str:
    for candidate in BINARY_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    raise RuntimeError("pgbouncer is not installed: apt-get install pgbouncer")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgBouncer:
    """A PgBouncer process in front of the server ``upstream_url`` points at."""

    def __init__(self, upstream_url: str, *, pool_size: int = 20) -> None:
        params = conninfo_to_dict(upstream_url)
        self.upstream_host = str(params.get("host") or "127.0.0.1")
        self.upstream_port = int(params.get("port") or 5432)
        self.user = str(params.get("user") or "postgres")
        self.upstream_url = upstream_url
        self.pool_size = pool_size
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="pgqrs-bouncer-"))
        self.process: subprocess.Popen[bytes] | None = None

    def _write_config(self, run_as: str | None) -> Path:
        (self.dir / "users.txt").write_text(f'"{self.user}" ""\n')
        config = self.dir / "pgbouncer.ini"
        config.write_text(
            "[databases]\n"
            f"* = host={self.upstream_host} port={self.upstream_port} user={self.user}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {self.dir / 'users.txt'}\n"
            f"admin_users = {self.user}\n"
            "pool_mode = transaction\n"
            "max_client_conn = 500\n"
            f"default_pool_size = {self.pool_size}\n"
            "ignore_startup_parameters = extra_float_digits,options\n"
            f"logfile = {self.dir / 'pgbouncer.log'}\n"
            f"pidfile = {self.dir / 'pgbouncer.pid'}\n"
        )
        if run_as is not None:
            entry = pwd.getpwnam(run_as)
            for path in (self.dir, *self.dir.iterdir()):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        return config

    def start(self, timeout: float = 10.0) -> None:
        # PgBouncer refuses to run as root; it switches to this user itself with -u: the
        # owner of the upstream's socket directory (embedded server) or "postgres".
        run_as = None
        if os.geteuid() == 0:
            socket_dir = Path(self.upstream_host)
            owner = socket_dir.stat().st_uid if socket_dir.is_absolute() else 0
            run_as = pwd.getpwuid(owner).pw_name if owner else "postgres"
        config = self._write_config(run_as)
        command = [find_binary(), "-q"]
        if run_as is not None:
            command += ["-u", run_as]
        self.process = subprocess.Popen([*command, str(config)])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"pgbouncer exited: {self.log()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return
            time.sleep(0.05)
        raise RuntimeError(f"pgbouncer did not start listening: {self.log()}")

    def log(self) -> str:
        path = self.dir / "pgbouncer.log"
        return path.read_text()[-2000:] if path.exists() else "(no log)"

    def url(self, database: str) -> str:
        """A client URL for ``database`` through the bouncer."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def admin(self, command: str) -> list[tuple[object, ...]]:
        """Run a command on PgBouncer's admin console (``SHOW POOLS``, ``KILL db``...)."""
        import psycopg

        with psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=self.user,
            dbname="pgbouncer",
            autocommit=True,
        ) as conn:
            cursor = conn.execute(command)
            return list(cursor.fetchall()) if cursor.description else []

    def close_server_connections(self, database: str) -> None:
        """Drop the pooled server connections to ``database`` (so it can be dropped)."""
        if not re.fullmatch(r"[A-Za-z0-9_]+", database):  # the console takes no parameters
            raise ValueError(f"not a plain database name: {database!r}")
        with contextlib.suppress(Exception):
            self.admin(f"KILL {database}")
            self.admin(f"RESUME {database}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
