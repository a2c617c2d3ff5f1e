"""End-to-end tests in a real headless Chromium (Debian's ``chromium``) driven by Playwright.

Run with ``make test-browser``, which installs the browser when it is missing. Playwright's
sync API runs an event loop in the test thread, and these tests also use the ORM from that
thread, which Django refuses as "async-unsafe". So ``DJANGO_ALLOW_ASYNC_UNSAFE`` is set
while the browser is open, for this module's tests alone: every other test, and every
worker subprocess, runs with Django's async-safety checks on.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("PGQRS_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Module-scoped: the event loop it runs, and the permission to call the ORM beside it,
    end with the browser tests' module, before any other module's tests run."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.fail(f"no Chromium at {CHROMIUM}: run `make browser` (apt-get install chromium)")
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()
