"""The benchmark of pgqrs_django (not tests: it measures, it does not assert timings).

``make bench`` (or ``python -m bench`` inside ``bench/.venv``) runs everything once against
one PostgreSQL and compares pgqrs with the hand-written SQL floor and its peers; see
``bench/__main__.py`` and docs/benchmarks.md. ``bench/cli_send_file.py`` times the operator
CLI's ``message send --file``.
"""
