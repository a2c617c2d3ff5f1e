#!/usr/bin/env python
"""The example project's manage.py.

Without DATABASE_URL (or PGQRS_DSN) it starts the embedded PostgreSQL kept in
example_project/.pgdata, so `make demo` and `make serve` need nothing installed by hand.
"""

import os
import sys
from pathlib import Path


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")
    if not (os.environ.get("DATABASE_URL") or os.environ.get("PGQRS_DSN")):
        from pgqrs_django import embedded

        # Exported, so worker processes started from here share the same server.
        os.environ["DATABASE_URL"] = embedded.start(Path(__file__).resolve().parent / ".pgdata")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
