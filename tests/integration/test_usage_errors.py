"""Usage errors (unknown option or command, missing argument, bad value) print plain lines on
stderr: `Usage: ...`, one unwrapped `Error: ...` line, a `Try ... --help` hint; exit 2, no
panel, no traceback, at any COLUMNS, piped or on a terminal. `--help` keeps typer's rendering.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import textwrap
from pathlib import Path

import pytest
import typer
from typer._click.exceptions import NoArgsIsHelpError, UsageError

from okrsync.cli import app
from okrsync.cli_errors import PlainUsageErrors

OKRSYNC = Path(sys.executable).with_name("okrsync")  # the console script, as users run it
LONG = "--an-option-whose-name-alone-is-longer-than-forty-columns-of-a-narrow-terminal"
BOX = ("╭", "│", "╰", "─")

# (argv, the command path in the usage and hint lines, the whole error message)
CASES = [
    (("sync", LONG), "okrsync sync", f"No such option: {LONG}"),
    (("nosuch",), "okrsync", "No such command 'nosuch'."),
    ((LONG,), "okrsync", f"No such option: {LONG}"),
    (("--config",), "okrsync", "Option '--config' requires an argument."),
    (("demo", "--workdir"), "okrsync demo", "Option '--workdir' requires an argument."),
    (
        ("sandbox", "--port", "not-a-number"),
        "okrsync sandbox",
        "Invalid value for '--port': Input should be a valid integer, unable to parse string "
        "as an integer",
    ),
    (("checkins",), "okrsync checkins", "Missing argument 'key_result'."),
    (("okrs", "show", "extra"), "okrsync okrs show", "Got unexpected extra argument(s) (extra)"),
    (("db", "nosuch"), "okrsync db", "No such command 'nosuch'."),
    (("db", "upgrade", LONG), "okrsync db upgrade", f"No such option: {LONG}"),
    (("mappings", "check", LONG), "okrsync mappings check", f"No such option: {LONG}"),
    (("mappings", "nosuch"), "okrsync mappings", "No such command 'nosuch'."),
    (("config", "show", LONG), "okrsync config show", f"No such option: {LONG}"),
]


def env(columns: str | None) -> dict[str, str]:
    """The environment with COLUMNS set (or unset) and no config from the caller's shell."""
    base = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "OKRSYNC_CONFIG")}
    return base if columns is None else {**base, "COLUMNS": columns}


def piped(*args: str, columns: str | None = "40", cwd: Path) -> subprocess.CompletedProcess[str]:
    """`okrsync ARGS` with stdout and stderr piped."""
    return subprocess.run(
        [str(OKRSYNC), *args],
        cwd=cwd,
        env=env(columns),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def on_a_terminal(*args: str, columns: int, cwd: Path) -> tuple[int, str]:
    """(exit code, everything written) of `okrsync ARGS` on a pseudo-terminal `columns` wide."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    proc = subprocess.Popen(
        [str(OKRSYNC), *args],
        cwd=cwd,
        env={**env(None), "TERM": "xterm-256color"},
        stdin=follower,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    chunks: list[bytes] = []
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        if not ready:
            proc.kill()
            break
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return proc.wait(timeout=60), b"".join(chunks).decode("utf-8", "replace")


def assert_plain(output: str, path: str, message: str) -> None:
    """`output` is exactly the usage line, the whole message on one line, the hint."""
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 3, output
    assert lines[0].startswith(f"Usage: {path} "), output
    assert lines[1] == f"Error: {message}", output
    assert lines[2] == f"Try '{path} --help' for help.", output
    assert "Traceback" not in output
    assert not any(ch in output for ch in BOX), output
    assert "\x1b" not in output, output


@pytest.mark.parametrize(("args", "path", "message"), CASES)
def test_piped_usage_errors_are_three_plain_lines_at_40_columns(
    tmp_path: Path, args: tuple[str, ...], path: str, message: str
) -> None:
    """Piped with COLUMNS=40: exit 2, usage / one-line error / hint on stderr, stdout empty."""
    proc = piped(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert_plain(proc.stderr, path, message)


@pytest.mark.parametrize("columns", [None, "20", "500"])
def test_piped_error_line_ignores_the_width(tmp_path: Path, columns: str | None) -> None:
    """Whatever COLUMNS is (unset, tiny, huge) the error line is the same single line."""
    proc = piped("sandbox", "--port", "not-a-number", cwd=tmp_path, columns=columns)
    assert proc.returncode == 2
    assert_plain(proc.stderr, "okrsync sandbox", CASES[5][2])


@pytest.mark.parametrize(
    ("args", "path", "message"), [CASES[0], CASES[4], CASES[5], CASES[9], CASES[12]]
)
def test_usage_errors_on_a_40_column_terminal_are_not_wrapped(
    tmp_path: Path, args: tuple[str, ...], path: str, message: str
) -> None:
    """On a pseudo-terminal 40 columns wide: the same three lines, no panel, no colour codes."""
    code, output = on_a_terminal(*args, columns=40, cwd=tmp_path)
    assert code == 2, output
    assert_plain(output, path, message)


def test_bad_parameter_from_a_command_body_is_plain(tmp_path: Path) -> None:
    """`typer.BadParameter` raised inside a command (`logs --level`) prints the same way."""
    log = tmp_path / "okrsync.log"
    log.write_text("", encoding="utf-8")
    proc = piped("logs", "--level", "bogus", "--file", str(log), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert_plain(
        proc.stderr,
        "okrsync logs",
        "Invalid value for --level: 'bogus': use one of debug, info, warning, error, critical",
    )


def test_escape_sequences_in_a_bad_option_are_not_printed(tmp_path: Path) -> None:
    """An option name carrying terminal escapes and a newline is printed without them."""
    proc = piped("sync", "--x\x1b]0;pwned\x07\x1b[2J\nmore", cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert lines[1].startswith("Error: No such option: --x"), proc.stderr
    assert lines[1].endswith("more"), proc.stderr
    assert len(lines) == 3, proc.stderr
    assert "\x1b" not in proc.stderr
    assert "\x07" not in proc.stderr


def test_a_group_without_a_command_still_shows_its_help(tmp_path: Path) -> None:
    """`okrsync db` (no command) prints the group's help on stdout and exits 2, as before."""
    proc = piped("db", cwd=tmp_path, columns="100")
    assert proc.returncode == 2
    assert "Usage: okrsync db [OPTIONS] COMMAND [ARGS]..." in proc.stdout
    assert "upgrade" in proc.stdout
    assert "Error" not in proc.stderr + proc.stdout


# Prints `okrsync ARGS --help` rendered by the root group's class named in argv[1].
HELP_PROBE = textwrap.dedent(
    """
    import sys
    import typer.core
    from okrsync import cli
    if sys.argv[1] == "plain":
        cli.app.info.cls = typer.core.TyperGroup
    sys.argv = ["okrsync", *sys.argv[2:], "--help"]
    cli.main()
    """
)


@pytest.mark.parametrize("args", [(), ("sync",), ("db",), ("mappings", "check")])
def test_help_is_unchanged_by_the_plain_usage_errors(tmp_path: Path, args: tuple[str, ...]) -> None:
    """`--help` prints the same rich panels as typer's own group class would, exit 0."""
    outputs = []
    for cls in ("plain", "ours"):
        proc = subprocess.run(
            [sys.executable, "-c", HELP_PROBE, cls, *args],
            cwd=tmp_path,
            env={**env("80"), "NO_COLOR": "1"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        outputs.append(proc.stdout)
    assert outputs[0] == outputs[1]
    assert "╭─ Options" in outputs[1]


def test_typer_private_click_classes_still_fit() -> None:
    """Guard: typer still vendors click's usage errors where okrsync.cli_errors imports them,
    raises them for a bad option, and builds the root group from `PlainUsageErrors`."""
    assert issubclass(typer.BadParameter, UsageError)
    assert issubclass(NoArgsIsHelpError, UsageError)
    root = typer.main.get_command(app)
    assert isinstance(root, PlainUsageErrors)
    with pytest.raises(UsageError):
        typer.core.TyperGroup.make_context(root, "okrsync", ["--no-such-option"])
