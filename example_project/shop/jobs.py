"""The example project's handlers, found by pgqrs_django's autodiscovery of ``jobs.py``.

Three realistic jobs: a welcome email (to the console email backend), an image thumbnail
(made with Pillow), and a sales report, some of which fail on purpose so the demo shows
retries and dead letters.
"""

from __future__ import annotations

import io
import statistics
from typing import Any

from django.core.mail import send_mail
from PIL import Image

import pgqrs_django
from pgqrs_django.models import Message


@pgqrs_django.handler("emails")
def send_welcome_email(message: Message) -> dict[str, Any]:
    """Send a welcome email; the result records where it went."""
    to = message.payload["to"]
    sent = send_mail(
        subject="Welcome to the shop",
        message=f"Hello {message.payload.get('name', to)}, thanks for signing up!",
        from_email="shop@example.com",
        recipient_list=[to],
    )
    return {"to": to, "sent": sent}


@pgqrs_django.handler("images")
def make_thumbnail(message: Message) -> dict[str, Any]:
    """Draw a picture of the requested size, shrink it to a thumbnail, return its PNG size."""
    width, height = message.payload["width"], message.payload["height"]
    picture = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    picture.thumbnail((128, 128))
    png = io.BytesIO()
    picture.save(png, format="PNG")
    return {"thumbnail": list(picture.size), "png_bytes": png.tell()}


class FlakyUpstream(ConnectionError):
    """A transient failure: the report works when retried."""


@pgqrs_django.handler("reports")
def compute_report(message: Message) -> dict[str, Any]:
    """Summarise a day of sales. Day numbers divisible by 50 hold corrupt data and fail every
    time (they end dead); those divisible by 7 hit a flaky upstream on the first delivery only
    (they succeed on retry)."""
    day = message.payload["day"]
    if day % 50 == 0:
        raise ValueError(f"sales file for day {day} is corrupt")
    if day % 7 == 0 and message.read_ct == 1:
        raise FlakyUpstream(f"warehouse API timed out for day {day}")
    sales = [(day * 37 + i * 11) % 500 for i in range(200)]
    return {"day": day, "total": sum(sales), "mean": statistics.fmean(sales)}
