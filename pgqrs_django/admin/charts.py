"""Throughput charts: bar geometry computed on the server, drawn as SVG by the template
(no JavaScript library, no CDN)."""

from __future__ import annotations

from typing import Any

from django.utils.functional import Promise

from ..formatting import format_seconds
from ..stats import Throughput

#: Chart size in SVG user units.
CHART_WIDTH, CHART_HEIGHT = 600, 120


def chart(series: Throughput, label: str | Promise) -> dict[str, Any]:
    """Bars for one throughput series, scaled to the chart box (numbers only: the template
    draws them)."""
    count = len(series.processed)
    peak = max(series.processed, default=0) or 1
    step = CHART_WIDTH / count
    bars = []
    for index, (processed, failed) in enumerate(
        zip(series.processed, series.failures, strict=True)
    ):
        height = processed / peak * CHART_HEIGHT
        failed_height = failed / peak * CHART_HEIGHT
        bars.append(
            {
                "x": round(index * step, 2),
                "width": round(max(step - 1, 1), 2),
                "y": round(CHART_HEIGHT - height, 2),
                "height": round(height, 2),
                "failed_y": round(CHART_HEIGHT - failed_height, 2),
                "failed_height": round(failed_height, 2),
                "processed": processed,
                "failed": failed,
                "ago": format_seconds((count - index) * series.bucket_seconds),
            }
        )
    return {
        "label": label,
        "bars": bars,
        "peak": peak if any(series.processed) else 0,
        "total": sum(series.processed),
        "failures": sum(series.failures),
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "bucket": format_seconds(series.bucket_seconds),
    }
