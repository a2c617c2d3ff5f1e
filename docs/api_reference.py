"""The API reference (reference.md) shows every public member but the async twins.

Two halves, both named in mkdocs.yml:

- :class:`AsyncTwins`, a griffe extension for mkdocstrings, drops the members assigned with
  ``async_twin(...)`` (``aenqueue = async_twin(enqueue)``); reference.md names them once for
  all. It recognises them by that assignment, not by their name, so ``archive`` or
  ``all_queues_metrics`` cannot be taken for one.
- :func:`on_page_content`, a MkDocs hook, checks the built page: every public method and
  property of each class it documents (``::: path``, unless ``members: false``) must have
  its entry, or the build warns, which ``mkdocs build --strict`` turns into a failure.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import griffe

logger = logging.getLogger("mkdocs.plugins.pgqrs_api_reference")

#: A ``::: dotted.path`` directive and the option lines under it.
DIRECTIVE = re.compile(r"^::: (\S+)\n((?:[ \t]+\S.*\n)*)", re.MULTILINE)


def is_async_twin(member: griffe.Object | griffe.Alias) -> bool:
    return member.is_attribute and str(getattr(member, "value", "")).startswith("async_twin(")


class AsyncTwins(griffe.Extension):
    """Drop the async twins from the classes mkdocstrings renders."""

    def on_class_members(self, *, cls: griffe.Class, **kwargs: Any) -> None:
        for name, member in list(cls.members.items()):
            if is_async_twin(member):
                cls.del_member(name)


def expected_entries(markdown: str) -> list[str]:
    """The ids of the public methods and properties of the classes the page documents."""
    ids = []
    for path, options in DIRECTIVE.findall(markdown):
        if "members: false" in options:
            continue
        module, _, name = path.rpartition(".")
        try:
            found = griffe.load(module, search_paths=["."])[name]
        except (ImportError, KeyError):
            continue  # a module, not a class: mkdocstrings reports what it cannot find
        if not found.is_class:
            continue
        for member_name, member in found.members.items():
            public = not member_name.startswith("_") and not is_async_twin(member)
            if public and (member.is_function or "property" in member.labels):
                ids.append(f"{path}.{member_name}")
    return ids


def on_page_content(html: str, page: Any, **kwargs: Any) -> str:
    if page.file.src_uri == "reference.md":
        for entry in expected_entries(page.markdown):
            if f'id="{entry}"' not in html:
                logger.warning("reference.md: %s is public but has no entry", entry)
    return html
