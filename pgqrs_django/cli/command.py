"""The base class of pgqrs's management commands: parsing, and errors as one line.

Both ``manage.py pgqrs`` and ``manage.py pgqrs_worker`` derive from :class:`CliCommand`:

- a parser error is a :class:`~pgqrs_django.cli.errors.UsageError` (one line, exit 2),
  whether the command runs from a shell or through ``call_command``;
- Django's standard flags (``--traceback``, ``-v``, ``--settings``...) may also follow a
  subcommand, as they follow the name of any Django command;
- an exception becomes one line on stderr with the exit code of
  :func:`~pgqrs_django.cli.errors.command_error`; an unexpected one (a bug) exits 70. Only
  ``--traceback`` shows a traceback, as for Django's own commands.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import textwrap
from typing import Any, NoReturn

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import (
    BaseCommand,
    CommandError,
    CommandParser,
    DjangoHelpFormatter,
    SystemCheckError,
    handle_default_options,
)
from django.db import connections

from pgqrs_django import conf

from .errors import BROKEN_PIPE, INTERNAL, INTERRUPTED, USAGE, UsageError, command_error, one_line


class CliParser(CommandParser):
    """Django's parser, except that a usage error raises :class:`UsageError` (one line,
    exit 2) instead of printing the usage text, however the command was called."""

    #: The subcommand's words ("queue create"), named in its errors.
    command_path = ""

    def error(self, message: str) -> NoReturn:
        where = f"{self.command_path}: " if self.command_path else ""
        raise UsageError(f"{where}{message} (see --help)")


class HelpFormatter(DjangoHelpFormatter):
    """Wraps descriptions paragraph by paragraph, keeps indented lines (examples) as they
    are, and never breaks a flag name at its hyphen."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = []
        for paragraph in text.split("\n\n"):
            if paragraph.startswith("  ") or "\n  " in paragraph:
                paragraphs.append("\n".join(indent + line for line in paragraph.splitlines()))
            else:
                paragraphs.append(super()._fill_text(paragraph, width, indent))
        return "\n\n".join(paragraphs)


class CliCommand(BaseCommand):
    """A management command whose errors are one line on stderr (see the module)."""

    #: Shown at the end of ``--help``.
    epilog: str | None = None

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        # What add_base_argument() adds to the top parser, for add_base_arguments().
        self._base_arguments: list[tuple[tuple[str, ...], dict[str, Any]]] = []
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", HelpFormatter)
        kwargs.setdefault("epilog", self.epilog)
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        # BaseCommand builds a plain CommandParser and offers no hook for its class; ours only
        # changes how errors are reported (subparsers are made as CliParser directly).
        parser.__class__ = CliParser
        return parser

    def add_base_argument(self, parser: CommandParser, *args: Any, **kwargs: Any) -> None:
        """Django's hook for its standard flags, kept as it is; also recorded here."""
        self._base_arguments.append((args, kwargs))
        super().add_base_argument(parser, *args, **kwargs)

    def add_subparser(self, actions: Any, name: str, **kwargs: Any) -> CliParser:
        """A subcommand's parser, from ``parser.add_subparsers(parser_class=CliParser)``."""
        parser: CliParser = actions.add_parser(
            name, allow_abbrev=False, formatter_class=HelpFormatter, **kwargs
        )
        return parser

    def add_base_arguments(self, parser: CommandParser) -> None:
        """Give a subcommand's parser the flags the top one got through add_base_argument():
        Django's standard flags and the command's global ones. On the subcommand they
        default to "not given", so one written before the subcommand is kept unless it is
        repeated after it."""
        for args, options in self._base_arguments:
            super().add_base_argument(parser, *args, **{**options, "default": argparse.SUPPRESS})

    def execute(self, *args: Any, **options: Any) -> Any:
        """Django's execute(), with every exception mapped by ``command_error``."""
        if options.get("force_color") and options.get("no_color"):
            raise UsageError("--no-color and --force-color cannot be used together")
        try:
            return super().execute(*args, **options)
        except Exception as exc:
            error = command_error(exc, lambda: options.get("database") or conf.database())
            if error is None or error is exc:
                raise
            raise error from exc

    def run_from_argv(self, argv: list[str]) -> None:
        try:
            code = self.main(argv)
        finally:
            with contextlib.suppress(ImproperlyConfigured):
                connections.close_all()
        if code:
            sys.exit(code)

    def main(self, argv: list[str]) -> int:
        """Run ``argv`` (``[prog, command, *args]``) and return the exit code. Every error
        becomes one line on stderr; with ``--traceback`` an error raises instead."""
        name = argv[1]
        self._called_from_command_line = True
        traceback = False
        try:
            parser = self.create_parser(argv[0], name)
            try:
                options = parser.parse_args(argv[2:])
            except SystemExit as exc:  # --help and --version
                return exc.code if isinstance(exc.code, int) else 0
            traceback = options.traceback
            cmd_options = vars(options)
            args = cmd_options.pop("args", ())
            handle_default_options(options)
            self.execute(*args, **cmd_options)
            return 0
        except SystemCheckError as exc:
            if traceback:
                raise
            self.stderr.write(str(exc), lambda text: text)  # Django's own report
            return USAGE
        except CommandError as exc:
            if traceback:
                raise
            self.stderr.write(f"{name}: error: {one_line(exc)}")
            return exc.returncode
        except KeyboardInterrupt:
            self.stderr.write(f"{name}: interrupted")
            return INTERRUPTED
        except BrokenPipeError:
            return BROKEN_PIPE
        except Exception as exc:
            if traceback:
                raise
            self.stderr.write(
                f"{name}: unexpected error: {one_line(exc, with_type=True)} "
                "(a bug: run again with --traceback for details)"
            )
            return INTERNAL
