"""Input validation shared by the API, the CLI and the admin: queue names, payloads, durations."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from typing import Any

from django.core.validators import RegexValidator

from . import conf
from .exceptions import (
    InvalidInput,
    InvalidQueueName,
    PayloadNotSerializable,
    PayloadTooDeep,
    PayloadTooLarge,
)

QUEUE_NAME_MAX_LENGTH = 128
QUEUE_NAME_PATTERN = r"\A[A-Za-z0-9_.\-]{1,128}\Z"
_QUEUE_NAME_RE = re.compile(QUEUE_NAME_PATTERN)
#: ``\u0000`` after an even number (zero included) of backslashes: a NUL in JSON text.
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")

#: The model field validator; the same rule as :func:`validate_queue_name`.
queue_name_validator = RegexValidator(
    QUEUE_NAME_PATTERN,
    "Queue names are 1-128 characters: letters, digits, '_', '-' and '.'.",
    code="invalid_queue_name",
)


def validate_queue_name(name: object) -> str:
    """Return ``name`` if it is a valid queue name, else raise :class:`InvalidQueueName`."""
    if not isinstance(name, str) or not _QUEUE_NAME_RE.match(name):
        shown = name if not isinstance(name, str) or len(name) <= 40 else name[:40] + "..."
        raise InvalidQueueName(
            f"invalid queue name {shown!r}: use 1-{QUEUE_NAME_MAX_LENGTH} characters from "
            "letters, digits, '_', '-' and '.'"
        )
    return name


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of a JSON-like value; stops counting once past ``limit``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list | tuple):
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def payload_limits() -> tuple[int, int]:
    """``(MAX_PAYLOAD_DEPTH, MAX_PAYLOAD_BYTES)``, read once per batch by callers."""
    return int(conf.get("MAX_PAYLOAD_DEPTH")), int(conf.get("MAX_PAYLOAD_BYTES"))


def serialize_payload(payload: Any, limits: tuple[int, int] | None = None) -> str:
    """Validate a payload and return its JSON text, as stored in the ``jsonb`` column.

    ``limits`` is ``payload_limits()`` (read from the settings when omitted). Raises
    :class:`PayloadNotSerializable`, :class:`PayloadTooDeep` or :class:`PayloadTooLarge`.
    """
    max_depth, max_bytes = limits if limits is not None else payload_limits()
    try:
        text = json.dumps(payload, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    except RecursionError:
        raise PayloadTooDeep(f"payload nests deeper than MAX_PAYLOAD_DEPTH={max_depth}") from None
    except ValueError as exc:  # NaN / Infinity
        raise PayloadNotSerializable(f"payload is not valid JSON: {exc}") from None
    except TypeError as exc:
        raise PayloadNotSerializable(f"payload is not JSON-serialisable: {exc}") from None
    # Nesting needs at least one bracket per level: walk the value only when the text has
    # more brackets than the limit (brackets inside strings merely cause a needless walk).
    if text.count("[") + text.count("{") > max_depth and _depth(payload, max_depth) > max_depth:
        raise PayloadTooDeep(f"payload nests deeper than MAX_PAYLOAD_DEPTH={max_depth}")
    # PostgreSQL's jsonb cannot store U+0000 in strings. json.dumps writes it as the escape
    # \u0000; a backslash that is itself escaped ("\\u0000": six characters) is no NUL.
    if "\\u0000" in text and _NUL_ESCAPE.search(text):
        raise PayloadNotSerializable("payload contains a NUL character, which jsonb cannot store")
    size = len(text.encode("utf-8"))
    if size > max_bytes:
        raise PayloadTooLarge(f"payload is {size} bytes, over MAX_PAYLOAD_BYTES={max_bytes}")
    return text


def check_batch_size(texts: list[str]) -> None:
    """Refuse a batch whose payloads (``serialize_payload`` texts) add up to more than
    ``MAX_BATCH_BYTES``: a batch travels as one jsonb array, which PostgreSQL caps at 256 MiB.
    Counting characters first avoids encoding when even four bytes each would fit."""
    limit = int(conf.get("MAX_BATCH_BYTES"))
    chars = sum(map(len, texts)) + len(texts) + 1  # the commas and brackets
    if chars * 4 <= limit:
        return
    size = sum(len(t.encode("utf-8")) for t in texts) + len(texts) + 1
    if size > limit:
        raise PayloadTooLarge(
            f"batch of {len(texts)} payloads is {size} bytes, over MAX_BATCH_BYTES={limit}: "
            "split it into smaller batches"
        )


def seconds(value: object, what: str, *, allow_zero: bool = True) -> float:
    """A duration in seconds (number or timedelta), finite, >= 0 and under ``MAX_DELAY``."""
    if isinstance(value, dt.timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{what} must be a number of seconds, not {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidInput(f"{what} must be a finite number of seconds, not {value!r}")
    if number < 0 or (number == 0 and not allow_zero):
        raise InvalidInput(f"{what} must be {'>= 0' if allow_zero else '> 0'}, not {value!r}")
    limit = float(conf.get("MAX_DELAY"))
    if number > limit:
        raise InvalidInput(f"{what} of {number:g} s is over MAX_DELAY={limit:g} s")
    return number


def positive_int(value: object, what: str, *, maximum: int | None = None) -> int:
    """An int >= 1 (and <= maximum when given)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{what} must be a whole number, not {value!r}")
    if value < 1:
        raise InvalidInput(f"{what} must be >= 1, not {value}")
    if maximum is not None and value > maximum:
        raise InvalidInput(f"{what} must be <= {maximum}, not {value}")
    return value


def priority(value: object) -> int:
    """A priority: an int that fits PostgreSQL's ``integer``; higher is claimed first."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"priority must be a whole number, not {value!r}")
    if not -(2**31) <= value < 2**31:
        raise InvalidInput(f"priority {value} is out of range")
    return value


def dedupe_key(value: object) -> str | None:
    """A dedupe key: None or a non-empty string of at most 255 characters without NUL."""
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 255 or "\x00" in value:
        raise InvalidInput("dedupe_key must be a non-empty string of at most 255 characters")
    return value
