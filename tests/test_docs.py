"""Every ```python block of README.md and docs/*.md runs, in order, against a fresh database."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
#: Marks a page whose examples assume the pgqrs tables on the default database.
ONE_DATABASE = "<!-- docs-test: one database -->"


def python_blocks(path: Path) -> list[str]:
    return BLOCK.findall(path.read_text())


def test_the_readme_has_its_usage_example() -> None:
    blocks = python_blocks(ROOT / "README.md")
    assert blocks, "README.md lost its usage example"
    lines = [line for line in blocks[0].splitlines() if line.strip()]
    assert len(lines) <= 10


# transaction=True: examples run as in an application, where commits happen (signals are
# sent on commit).
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "path", [p for p in DOCS if python_blocks(p)], ids=lambda p: str(p.relative_to(ROOT))
)
def test_code_examples_run(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if settings.QUEUE_DB is not None and ONE_DATABASE in path.read_text():
        # The page shows data and jobs in one transaction, which needs the pgqrs tables on
        # the data's database; `make test` runs it, and databases.md's blocks show the
        # two-database case.
        pytest.skip("the page's examples assume the pgqrs tables on the default database")
    # The blocks run as the module docs_<page>, importable while they run, as an
    # application's module is (the worker imports Django tasks by dotted path).
    module = types.ModuleType(f"docs_{path.stem}")
    sys.modules[module.__name__] = module
    try:
        for number, block in enumerate(python_blocks(path), 1):
            try:
                exec(compile(block, f"{path.name} block {number}", "exec"), module.__dict__)
            except Exception as exc:
                pytest.fail(f"{path.name} block {number} failed: {exc!r}\n{block}")
    finally:
        del sys.modules[module.__name__]


@pytest.mark.django_db
def test_readme_example_does_what_it_says(capsys: pytest.CaptureFixture[str]) -> None:
    from pgqrs_django.models import Archive, Message

    exec(compile(python_blocks(ROOT / "README.md")[0], "README.md", "exec"), {})
    assert capsys.readouterr().out == "sending to ada@example.com\n"
    row = Archive.objects.get()
    assert (row.outcome, row.result, row.priority) == ("succeeded", {"sent": True}, 5)
    assert not Message.objects.exists()
