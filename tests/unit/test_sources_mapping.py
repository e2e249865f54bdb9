"""A key result's `source` in the mapping files: validated with file:line and the fix, all
problems at once; environment variables checked apart from loading (docs/sources.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from okrsync.okrfile import OkrFileError, load_tree, missing_env
from tests.helpers import write

HEAD = """
[[objective]]
id = "o"
title = "O"
period = "2026-Q4"
"""


def kr(ident: str, source: str) -> str:
    return (
        f'\n[[key_result]]\nid = "{ident}"\nobjective = "o"\ntitle = "{ident}"\n'
        f"start = 0\ntarget = 10\n{source}\n"
    )


def problems(path: Path) -> list[str]:
    with pytest.raises(OkrFileError) as caught:
        load_tree([path])
    return caught.value.problems


def test_each_kind_loads_with_its_schedule_and_options(tmp_path: Path) -> None:
    """sql, file, http_json and prometheus sources load; the schedule becomes seconds (default
    every 1h) and a file path is resolved against the mapping file's folder."""
    text = HEAD + kr("a", 'source = { kind = "sql", url_env = "DB", query = "select 1", '
                          'schedule = "every 15m" }')  # fmt: skip
    text += kr("b", 'source = { kind = "file", path = "data/kpi.csv", schedule = "every 2d" }')
    text += kr("c", 'source = { kind = "http_json", url = "https://kpi.example/x", '
                    'expression = "data.value", headers_env = { X-Key = "KPI_KEY" } }')  # fmt: skip
    text += kr("d", 'source = { kind = "prometheus", url_env = "PROM", query = "up", '
                    'token_env = "PROM_TOKEN", step = "1h" }')  # fmt: skip
    text += kr("e", "")
    tree = load_tree([write(tmp_path / "m" / "okrs.toml", text)])
    sources = {k: v.metric_source for k, v in tree.key_results.items()}
    assert sources["e"] is None
    a, b, c, d = (sources[x] for x in "abcd")
    assert a is not None
    assert b is not None
    assert c is not None
    assert d is not None
    assert (a.kind, a.every_s, a.options["query"]) == ("sql", 900, "select 1")
    assert b.every_s == 2 * 86400
    assert b.options["path"] == str(tmp_path / "m" / "data" / "kpi.csv")
    assert (c.every_s, d.every_s) == (3600, 3600)
    assert str(a.where) == f"{tmp_path / 'm' / 'okrs.toml'}:12"
    assert c.env_vars() == [("headers_env.X-Key", "KPI_KEY")]
    assert d.env_vars() == [("url_env", "PROM"), ("token_env", "PROM_TOKEN")]


def test_every_source_problem_is_reported_at_once_with_its_line(tmp_path: Path) -> None:
    """Unknown keys (did-you-mean), a wrong kind, a missing required key, a schedule under a
    minute, a non-http URL, a bad JMESPath, a backfill query without :since and an env key
    holding a value instead of a name: one error each, with file:line."""
    text = HEAD
    text += kr("a", 'source = { kind = "sql", url_env = "DB", query = "q", schedul = "every 1h" }')
    text += kr("b", 'source = { kind = "sqll", query = "q" }')
    text += kr("c", 'source = { kind = "sql", query = "q" }')
    text += kr("d", 'source = { kind = "file", path = "x.csv", schedule = "every 30s" }')
    text += kr("e", 'source = { kind = "http_json", url = "ftp://x/y", expression = "a.[" }')
    text += kr("f", 'source = { kind = "sql", url_env = "postgres://u:pw@h/db", query = "q", '
                    'backfill_query = "select 1" }')  # fmt: skip
    path = write(tmp_path / "okrs.toml", text)
    found = problems(path)
    at = {p.split(": ", 1)[0].rsplit(":", 1)[1]: p.split(": ", 1)[1] for p in found}
    assert at["12"] == "unknown key 'schedul' in a sql source; did you mean 'schedule'?"
    assert at["20"] == "source 'kind' 'sqll' is not a source kind; did you mean 'sql'?"
    assert at["28"] == "a sql source needs 'url_env'"
    assert at["36"].startswith('schedule must be "every <N><s|m|h|d>", at least every 1m')
    e = [p for p in found if p.startswith(f"{path}:44:")]
    assert [p.split(": ", 1)[1][:30] for p in e] == [
        "url must start with http:// or",
        "expression is not a JMESPath e",
    ]
    f = [p.split(": ", 1)[1] for p in found if p.startswith(f"{path}:52:")]
    assert f[0].startswith("'url_env' must name an environment variable")
    assert "pw" not in f[0]  # a secret written in the wrong place is not repeated
    assert f[1].startswith("backfill_query must use the :since bind")
    assert len(found) == 8


def test_a_source_table_header_form_names_the_line_of_the_key(tmp_path: Path) -> None:
    """`[key_result.source]` written as a table: a problem names the key's own line."""
    text = (
        HEAD + kr("a", "") + '[key_result.source]\nkind = "file"\npath = "x.csv"\nformat = "xls"\n'
    )
    path = write(tmp_path / "okrs.toml", text)
    assert problems(path) == [f'{path}:16: format must be "csv" or "json"']


def test_a_source_that_is_not_a_table_is_refused(tmp_path: Path) -> None:
    """`source = "sql"` says how a source is written."""
    path = write(tmp_path / "okrs.toml", HEAD + kr("a", 'source = "sql"'))
    (only,) = problems(path)
    assert only.startswith(f"{path}:12: source must be a table such as source = {{ kind")


def test_missing_environment_variables_are_named_with_file_line_but_never_fail_a_load(
    tmp_path: Path,
) -> None:
    """load_tree accepts a source whose variable is unset (a sync must not stop for it);
    missing_env names each unset variable with the source's file:line."""
    text = HEAD + kr("a", 'source = { kind = "prometheus", url_env = "PROM_URL", query = "up", '
                          'username_env = "PU", password_env = "PP" }')  # fmt: skip
    path = write(tmp_path / "okrs.toml", text)
    tree = load_tree([path])
    assert missing_env(tree, {"PROM_URL": "http://p", "PU": "u", "PP": "p"}) == []
    found = missing_env(tree, {"PROM_URL": "http://p", "PU": ""})
    assert [p.split(": ", 1)[0] for p in found] == [f"{path}:12"] * 2
    assert "environment variable PU (username_env) is not set" in found[0]
    assert "environment variable PP (password_env) is not set" in found[1]
