"""Lean start-up: the CLI imports a heavy module only in the command that uses it.

Each case runs in a fresh interpreter (this test process has long since imported everything)
and reports which of the heavy packages are in `sys.modules` afterwards. Behaviour, not time:
no figure is asserted here; `python -m bench.bench_startup` prints the timings.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

HEAVY = (
    *("sqlalchemy", "sqlmodel", "alembic", "orjson"),  # the store
    *("httpx", "apscheduler", "prometheus_client"),  # sync and the daemon
    *("pydantic", "structlog", "re2"),  # config, logging, mapping rules
)

# Runs `okrsync ARGV` through the console-script entry in this interpreter, then prints the
# exit code and the top-level packages loaded, as one JSON line after the command's output.
PROBE = textwrap.dedent(
    """
    import json, sys
    import okrsync.cli
    code = None
    if sys.argv[1:]:
        sys.argv = ["okrsync", *sys.argv[1:]]
        try:
            okrsync.cli.main()
        except SystemExit as exc:
            code = exc.code
    print(json.dumps({"code": code, "modules": sorted({m.split(".")[0] for m in sys.modules})}))
    """
)


def probe(*args: str, cwd: Path) -> tuple[object, set[str], str]:
    """(exit code, top-level packages loaded, the command's own output) of `okrsync ARGS`."""
    env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1"}
    env.pop("OKRSYNC_CONFIG", None)
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    *output, last = proc.stdout.rstrip("\n").split("\n")
    report = json.loads(last)
    return report["code"], set(report["modules"]), "\n".join(output)


def test_importing_the_cli_loads_no_heavy_module(tmp_path: Path) -> None:
    """`import okrsync.cli` brings typer only: no database, HTTP, scheduler, model or console."""
    _, loaded, _ = probe(cwd=tmp_path)
    assert "typer" in loaded
    assert loaded.isdisjoint((*HEAVY, "rich")), sorted(loaded.intersection((*HEAVY, "rich")))


def test_version_loads_no_heavy_module(tmp_path: Path) -> None:
    """`okrsync --version` prints the version, exits 0 and loads nothing beyond typer."""
    code, loaded, output = probe("--version", cwd=tmp_path)
    assert (code, output) == (0, "okrsync 0.1.0")
    assert loaded.isdisjoint((*HEAVY, "rich")), sorted(loaded.intersection((*HEAVY, "rich")))


def test_help_loads_only_what_typer_needs(tmp_path: Path) -> None:
    """`okrsync --help` lists the commands and loads typer (and rich, its help renderer) only."""
    code, loaded, output = probe("--help", cwd=tmp_path)
    assert code == 0
    assert "mappings" in output
    assert "sync" in output
    assert loaded.isdisjoint(HEAVY), sorted(loaded.intersection(HEAVY))


def test_mappings_check_without_a_store_opens_no_database(tmp_path: Path) -> None:
    """`mappings check` with no store yet validates the files without sqlalchemy or httpx."""
    mappings = Path(__file__).resolve().parents[2] / "mappings"
    config = tmp_path / "okrsync.toml"
    config.write_text(f'[mappings]\npaths = ["{mappings.as_posix()}"]\n', encoding="utf-8")
    code, loaded, output = probe("-c", str(config), "mappings", "check", cwd=tmp_path)
    assert code == 0, output
    assert "no store yet" in output
    assert "no errors" in output
    unused = ("sqlalchemy", "sqlmodel", "httpx", "apscheduler", "alembic", "orjson")
    assert loaded.isdisjoint(unused), sorted(loaded.intersection(unused))


def test_reading_connector_sections_imports_no_connector(tmp_path: Path) -> None:
    """Each section is validated by its plug-in's `Config`; the connectors (httpx) stay unloaded."""
    mappings = Path(__file__).resolve().parents[2] / "mappings"
    sections = [  # (name, type, base_url, scope, keys of its own): the demo's connectors
        ("jira", "jira", "https://a.atlassian.net", "WEB", 'flavor = "cloud"\nemail_env = "E"\n'),
        ("jira-dc", "jira", "https://jira.example", "OPS", 'flavor = "server"\n'),
        ("asana", "asana", "https://app.asana.com/api/1.0", "1200357126478233", ""),
        ("github", "github", "https://api.github.com", "octocat/Hello-World", ""),
    ]
    text = f'[mappings]\npaths = ["{mappings.as_posix()}"]\n' + "".join(
        f'[[connectors]]\nname = "{name}"\ntype = "{kind}"\nbase_url = "{url}"\n'
        f'scope = ["{scope}"]\ntoken_env = "T"\n{extra}'
        for name, kind, url, scope, extra in sections
    )
    config = tmp_path / "okrsync.toml"
    config.write_text(text, encoding="utf-8")
    code, loaded, output = probe("-c", str(config), "mappings", "check", cwd=tmp_path)
    assert code == 0, output
    unused = ("httpx", "orjson", "sqlalchemy")
    assert loaded.isdisjoint(unused), sorted(loaded.intersection(unused))


def test_a_config_error_still_exits_2_without_a_traceback(tmp_path: Path) -> None:
    """A lazily loaded config that is missing still gives `error: ...` on stderr and exit 2."""
    proc = subprocess.run(
        [sys.executable, "-m", "okrsync.cli", "-c", str(tmp_path / "none.toml"), "report"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ")
    assert "none.toml" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


# Configures logging as the daemon and a sync do, logs an error with a traceback, then prints
# the top-level packages loaded as one JSON line on stdout (the log lines go to stderr).
LOGGING_PROBE = textwrap.dedent(
    """
    import json, sys
    from okrsync.logging import configure
    import structlog
    configure("info", sys.argv[1])
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        structlog.get_logger().exception("failed", connector="gh")
    print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
    """
)


def logging_probe(fmt: str) -> tuple[set[str], str]:
    """(top-level packages loaded, what was logged) after logging one exception in `fmt`."""
    proc = subprocess.run(
        [sys.executable, "-c", LOGGING_PROBE, fmt],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return set(json.loads(proc.stdout)), proc.stderr


def test_json_logging_never_imports_rich() -> None:
    """structlog configured for JSON lines logs a traceback without loading rich."""
    loaded, logged = logging_probe("json")
    event = json.loads(logged)
    assert (event["event"], event["connector"], event["level"]) == ("failed", "gh", "error")
    assert "RuntimeError: boom" in event["exception"]
    assert "structlog" in loaded
    assert "rich" not in loaded


def test_console_logging_renders_the_traceback_without_rich() -> None:
    """The console renderer writes the formatted traceback as text, rich still unloaded."""
    loaded, logged = logging_probe("console")
    assert "failed" in logged
    assert "connector=gh" in re.sub(r"\x1b\[[0-9;]*m", "", logged)  # without colours
    assert "RuntimeError: boom" in logged
    assert "rich" not in loaded
