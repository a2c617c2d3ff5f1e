"""Where a command's output goes and how it looks: tables or JSON on stdout or in a file,
and the level of the pgqrs loggers on stderr."""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pgqrs_django.formatting import Column, format_cell, render_json, render_record, render_table

from .errors import UsageError, one_line

FORMATS = ("table", "json")


@dataclasses.dataclass
class Output:
    """What a subcommand produced.

    ``data`` is printed by ``--format json``. The table format prints ``text`` if given, else
    ``rows`` (or ``data``) as a table of ``columns``, else ``data`` as key/value lines.
    ``failure`` makes the command exit 1 with that line on stderr, after the output.
    """

    data: Any
    text: str | None = None
    columns: Sequence[Column] | None = None
    rows: Sequence[Mapping[str, Any]] | None = None
    empty: str = "nothing to show"
    failure: str | None = None

    def render(self, fmt: str) -> str:
        if fmt == "json":
            return render_json(self.data)
        if self.text is not None:
            return self.text
        if self.columns is not None:
            rows = self.rows if self.rows is not None else self.data
            return render_table(rows, self.columns) if rows else self.empty
        if isinstance(self.data, Mapping):
            return render_record(self.data)
        return self.empty if self.data is None else format_cell(self.data)


def out_path(value: str | None) -> Path | None:
    """The ``--out`` file, checked before anything runs so that a bad path changes nothing."""
    if value is None:
        return None
    if "\x00" in value:
        raise UsageError("--out: a path cannot hold a NUL character")
    path = Path(value)
    parent = path.parent if str(path.parent) else Path(".")
    if not value or path.is_dir():
        raise UsageError(f"--out {one_line(value)[:60]!r} is a directory, not a file")
    if not parent.is_dir():
        raise UsageError(f"--out {one_line(value)[:60]!r}: directory {str(parent)!r} not found")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"--out {one_line(value)[:60]!r} is not writable")
    return path


def configure_logging(level: str | None, *, layout: str | None = None) -> None:
    """Set the level of the ``pgqrs_django`` loggers (None: leave it to ``LOGGING``). They log
    to stderr, in ``layout``, unless the project's ``LOGGING`` already sends them somewhere
    (a handler on ``pgqrs_django`` or an ancestor, root included)."""
    if level is None:
        return
    package = logging.getLogger("pgqrs_django")
    package.setLevel(level.upper())
    if not package.hasHandlers():
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(layout))
        package.addHandler(handler)
