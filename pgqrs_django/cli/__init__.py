"""The command-line side of pgqrs_django: what ``manage.py pgqrs`` and ``manage.py
pgqrs_worker`` are made of (the management commands are entry points into it).

- :mod:`~pgqrs_django.cli.command`: the base class of both commands (parser errors and every
  other error as one line, Django's standard flags after a subcommand);
- :mod:`~pgqrs_django.cli.errors`: exit codes and the mapping of exceptions to them;
- :mod:`~pgqrs_django.cli.types`: argument types (one duration grammar for both commands);
- :mod:`~pgqrs_django.cli.output`: tables or JSON, ``--out``, log levels;
- :mod:`~pgqrs_django.cli.base`: what every ``pgqrs`` subcommand shares;
- one module per group of ``pgqrs`` subcommands: :mod:`~pgqrs_django.cli.system` (install,
  uninstall, verify, stats), :mod:`~pgqrs_django.cli.queue`, :mod:`~pgqrs_django.cli.message`,
  :mod:`~pgqrs_django.cli.archive`, :mod:`~pgqrs_django.cli.worker`;
- :mod:`~pgqrs_django.cli.pgqrs_command` and :mod:`~pgqrs_django.cli.worker_command`: the
  body of each management command.

Data flows one way: the commands call the API (``PgqrsAdmin``, ``Producer``, ``Consumer``,
``WorkerRuntime``); nothing in the API calls back into this package.
"""
