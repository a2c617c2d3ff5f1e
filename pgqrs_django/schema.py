"""The pgqrs tables and indexes as the models declare them, and ``verify()``, which checks
that a database has them.

Both lists are read from the models' ``_meta``, never written out by hand, so a table or an
index added to models.py is checked the day it is added.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from django.db import DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Field, Model, UniqueConstraint

from .models import Queue


@dataclasses.dataclass(frozen=True)
class VerifyReport:
    """What ``verify()`` found: ``ok`` is True when ``problems`` is empty."""

    problems: list[str]
    checked: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "problems": self.problems, "checked": self.checked}


@dataclasses.dataclass(frozen=True)
class IndexSpec:
    """An index a model declares: by ``name`` when the model names it (``Meta.indexes``, a
    ``UniqueConstraint``), else by ``columns`` (``unique=True``, ``db_index``, foreign keys,
    ``unique_together``), whose name PostgreSQL or Django chose."""

    table: str
    columns: tuple[str, ...]
    unique: bool
    name: str | None = None

    def __str__(self) -> str:
        if self.name is not None:
            return f"index {self.name}"
        kind = "unique index" if self.unique else "index"
        return f"{kind} on {self.table} ({', '.join(self.columns)})"

    def found_in(self, constraints: Mapping[str, Mapping[str, Any]]) -> bool:
        """Whether a table's introspected constraints (Django's ``get_constraints``) hold
        this index."""
        if self.name is not None:
            return self.name in constraints
        for found in constraints.values():
            if found["primary_key"] or found["columns"] != list(self.columns):
                continue
            # A unique constraint is backed by a unique index, which serves lookups too.
            if found["unique"] or (found["index"] and not self.unique):
                return True
        return False


def models() -> list[type[Model]]:
    """The models of the app that own a table (the many-to-many link table included; the
    dashboard's unmanaged model left out)."""
    app = Queue._meta.app_config
    assert app is not None
    return [
        model
        for model in app.get_models(include_auto_created=True)
        if model._meta.managed and not model._meta.proxy
    ]


def tables() -> list[str]:
    """Every pgqrs table, in the order the models are declared."""
    return [model._meta.db_table for model in models()]


def indexes() -> list[IndexSpec]:
    """Every index the models declare, named or not (primary keys aside)."""
    specs: list[IndexSpec] = []
    for model in models():
        meta = model._meta
        table = meta.db_table
        for index in meta.indexes:
            specs.append(IndexSpec(table, _columns(model, index.fields), False, index.name))
        for constraint in meta.constraints:
            if isinstance(constraint, UniqueConstraint):
                columns = _columns(model, constraint.fields)
                specs.append(IndexSpec(table, columns, True, constraint.name))
        for field in meta.local_concrete_fields:
            if field.primary_key:
                continue
            # getattr: django-stubs do not declare Field.db_index.
            if field.unique or getattr(field, "db_index", False):
                specs.append(IndexSpec(table, (str(field.column),), field.unique))
        for together in meta.unique_together:
            specs.append(IndexSpec(table, _columns(model, together), True))
    return specs


def _columns(model: type[Model], fields: Iterable[str]) -> tuple[str, ...]:
    """Column names of model fields given as in ``Meta`` (``"-priority"`` is ``priority``)."""
    columns = []
    for name in fields:
        field = model._meta.get_field(name.lstrip("-"))
        assert isinstance(field, Field), f"{name} is not a field of {model.__name__}"
        columns.append(str(field.column))
    return tuple(columns)


def verify(using: str) -> VerifyReport:
    """Check the database is PostgreSQL, the migrations are applied, and every table and
    index of :func:`tables` and :func:`indexes` exists. Returns a report; never raises for a
    problem it can describe."""
    problems: list[str] = []
    checked: list[str] = []
    connection = connections[using]
    try:
        connection.ensure_connection()
    except DatabaseError as exc:
        return VerifyReport([f"cannot connect to database {using!r}: {exc}"], [])
    checked.append("connection")
    if connection.vendor != "postgresql":
        return VerifyReport(
            [f"database {using!r} is {connection.vendor}, pgqrs needs PostgreSQL"], checked
        )
    checked.append("postgresql")
    executor = MigrationExecutor(connection)
    app_label = Queue._meta.app_label
    targets = [key for key in executor.loader.graph.leaf_nodes() if key[0] == app_label]
    pending = [m for m, _ in executor.migration_plan(targets) if m.app_label == app_label]
    if pending:
        problems.append("unapplied migrations: " + ", ".join(m.name for m in pending))
    checked.append("migrations")
    with connection.cursor() as cursor:
        existing = set(connection.introspection.table_names(cursor))
        present = [table for table in tables() if table in existing]
        problems.extend(f"missing table {table}" for table in tables() if table not in existing)
        checked.append("tables")
        # A missing table is one problem, not one more per index it would have had.
        constraints = {
            table: connection.introspection.get_constraints(cursor, table) for table in present
        }
    problems.extend(
        f"missing {index}"
        for index in indexes()
        if index.table in constraints and not index.found_in(constraints[index.table])
    )
    checked.append("indexes")
    return VerifyReport(problems, checked)
