"""Argument types shared by ``manage.py pgqrs`` and ``manage.py pgqrs_worker``.

Each turns one command-line word into a value or raises ``ArgumentTypeError``, so that a bad
value is a usage error (one line, exit code 2) found before anything runs. Durations have
one grammar everywhere: seconds (``30``, ``1.5``) or numbers with units (``500ms``, ``90s``,
``30m``, ``12h``, ``7d``, ``2w``, ``1h30m``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
from typing import Any

from pgqrs_django.exceptions import InvalidInput
from pgqrs_django.validation import validate_queue_name

from .errors import one_line

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)\s*(ms|w|d|h|m|s)?", re.IGNORECASE)
_DURATION_UNITS = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
UNITS_HINT = "or a number with a unit: 500ms, 90s, 30m, 12h, 7d, 2w, 1h30m"


def shown(text: str) -> str:
    """A command-line word as an error message quotes it: one line, at most 40 characters."""
    return repr(one_line(text)[:40])


def parse_duration(text: str) -> float | None:
    """Seconds from ``90``, ``1.5``, ``90s``, ``30m``, ``12h``, ``7d``, ``2w``, ``1h30m``;
    None if ``text`` is not a duration (signs, exponents, ``nan`` and ``inf`` are not)."""
    raw = text.strip()
    pos, total, parts = 0, 0.0, 0
    while pos < len(raw):
        match = _DURATION_PART.match(raw, pos)
        if match is None or (parts and match.group(2) is None):
            return None  # not a number, or "1h30" (ambiguous)
        total += float(match.group(1)) * _DURATION_UNITS[(match.group(2) or "s").lower()]
        parts += 1
        pos = match.end()
        while pos < len(raw) and raw[pos] == " ":
            pos += 1
    return total if parts and math.isfinite(total) else None


@dataclasses.dataclass(frozen=True)
class Duration:
    """A duration argument: zero allowed or not, and an optional smallest value."""

    allow_zero: bool = True
    minimum: float = 0.0

    def __call__(self, text: str) -> float:
        seconds = parse_duration(text)
        if seconds is None or (seconds == 0 and not self.allow_zero):
            bound = ">= 0" if self.allow_zero else "> 0"
            raise argparse.ArgumentTypeError(
                f"{shown(text)} must be a number of seconds {bound} {UNITS_HINT}"
            )
        if seconds < self.minimum:
            raise argparse.ArgumentTypeError(
                f"{shown(text)} is under the minimum of {self.minimum:g} s"
            )
        return seconds


#: Any duration >= 0 (the API checks the finer rules: lease lengths > 0, MAX_DELAY...).
duration = Duration()


@dataclasses.dataclass(frozen=True)
class WholeNumber:
    """A whole-number argument within ``minimum`` and ``maximum`` (None: no bound)."""

    minimum: int | None = None
    maximum: int | None = None

    def __call__(self, text: str) -> int:
        try:
            value = int(text.strip(), 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{shown(text)} is not a whole number") from None
        low = self.minimum if self.minimum is not None else value
        high = self.maximum if self.maximum is not None else value
        if low <= value <= high:
            return value
        if self.maximum is None:
            raise argparse.ArgumentTypeError(f"{value} is under the minimum of {low}")
        raise argparse.ArgumentTypeError(f"{value} is not between {low} and {high}")


#: PostgreSQL's ``bigint``, the type of OFFSET: a larger offset is a usage error, not SQL's.
BIGINT_MAX = 2**63 - 1

#: A whole number >= 1 (counts, limits, message ids), >= 0 (offsets), or any (priorities).
count = WholeNumber(minimum=1)
offset = WholeNumber(minimum=0, maximum=BIGINT_MAX)
integer = WholeNumber()
message_id = count


def queue_name(text: str) -> str:
    """A valid queue name (checked by the same rule as the API)."""
    try:
        return validate_queue_name(text)
    except InvalidInput as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


#: json.loads gives up on documents nested thousands deep; no payload may nest that deep.
TOO_DEEP = "nests too deep to parse (far over MAX_PAYLOAD_DEPTH)"


@dataclasses.dataclass(frozen=True)
class Document:
    """A parsed JSON argument (a wrapper, so that the document ``null`` differs from "no
    argument given")."""

    value: Any


def json_document(text: str) -> Document:
    """A JSON document (the message payload)."""
    try:
        return Document(json.loads(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"invalid JSON payload: {exc}") from None
    except RecursionError:
        raise argparse.ArgumentTypeError(f"JSON payload {TOO_DEEP}") from None


def worker_ref(text: str) -> int | str:
    """A worker id (digits) or name."""
    if not text or "\x00" in text:
        raise argparse.ArgumentTypeError("a worker id or name cannot be empty or hold NUL")
    return int(text) if text.isascii() and text.isdigit() else text


def worker_name(text: str) -> str:
    """A name for a new worker: 1-200 characters, not only spaces."""
    if not text.strip() or len(text) > 200:
        raise argparse.ArgumentTypeError("a worker name has 1-200 characters")
    return text
