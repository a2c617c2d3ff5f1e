"""Test support for projects using pgqrs_django (and for pgqrs_django's own suite)."""
