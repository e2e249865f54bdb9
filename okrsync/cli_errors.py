"""Usage errors as plain text: `Usage: ...`, one `Error: ...` line, a `Try ... --help` hint.

typer draws click's usage errors (unknown option or command, missing argument, bad value) in
a rich panel hard-wrapped at the terminal width, mid-sentence and boxed even in a pipe.
`PlainUsageErrors`, the root group's class (`typer.Typer(cls=...)`), catches them where
click raises them: in its own `make_context` (the root's options) and in its `invoke` (every
sub-app and command below it, their options, and `typer.BadParameter` raised by a command
body). It prints three plain lines on stderr, never wrapped, and exits 2. `--help` and the
help printed when a group is run without a command (`NoArgsIsHelpError`) keep typer's rich
rendering.

typer 0.29 vendors click as `typer._click` and exports no usage-error class (only
`typer.BadParameter`, one of its subclasses), so the two exception classes come from there
(and click's `Command` and `Context`, for annotations only);
tests/integration/test_usage_errors.py fails loudly if typer moves or renames them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer
from typer._click.exceptions import NoArgsIsHelpError, UsageError
from typer.core import TyperGroup

from okrsync.textsafe import clean_text

if TYPE_CHECKING:
    from typer._click.core import Command, Context

MESSAGE_LIMIT = 2000  # characters of one error message; a pasted blob is cut, not wrapped


def usage_text(exc: UsageError, ctx: Context | None) -> str:
    """The lines printed for `exc` raised in `ctx`: usage, the error, the help hint."""
    message = " ".join(clean_text(exc.format_message(), MESSAGE_LIMIT).split())
    if ctx is None:
        return f"Error: {message}\n"
    pieces = " ".join(ctx.command.collect_usage_pieces(ctx))
    lines = [f"Usage: {ctx.command_path} {pieces}".rstrip(), f"Error: {message}"]
    if ctx.command.get_help_option(ctx) is not None:
        lines.append(f"Try '{ctx.command_path} {ctx.help_option_names[0]}' for help.")
    return "\n".join(lines) + "\n"


def exit_usage(exc: UsageError, ctx: Context | None) -> typer.Exit:
    """Print `exc` plainly on stderr; the exit (code 2) for the caller to raise."""
    typer.echo(usage_text(exc, exc.ctx or ctx), err=True, nl=False, color=False)
    return typer.Exit(exc.exit_code)


def bare_context(command: Command, name: str | None, parent: Context | None) -> Context:
    """A context of `command` parsed from no arguments: its usage line and help hint.

    For the few errors click raises without a context (an option's value missing at the end
    of the line): the command being parsed is named, its partial context is gone.
    """
    return command.make_context(name, [], parent=parent, resilient_parsing=True)


class PlainUsageErrors(TyperGroup):
    """The root group: usage errors anywhere below it print as plain lines, exit 2."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: Context | None = None,
        **extra: Any,
    ) -> Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except NoArgsIsHelpError:
            raise  # typer has printed the help; it exits 2
        except UsageError as exc:
            ctx = None if exc.ctx else bare_context(self, info_name, parent)
            raise exit_usage(exc, ctx) from None

    def invoke(self, ctx: Context) -> Any:
        try:
            return super().invoke(ctx)
        except NoArgsIsHelpError:
            raise
        except UsageError as exc:
            raise exit_usage(exc, exc.ctx or self._failed_context(ctx)) from None

    def _failed_context(self, ctx: Context) -> Context:
        """The context of the subcommand being parsed when the error came (else `ctx`)."""
        name = ctx.invoked_subcommand
        command = self.get_command(ctx, name) if name else None
        if command is None:
            return ctx
        return bare_context(command, name, ctx)
