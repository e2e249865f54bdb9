"""`python -m bench`'s combined table: rows files in, one table out, failures as rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from bench.__main__ import Outcome, build_table, load_rows, main, select

SYNC_ROWS = [
    {
        "bench": "sync",
        "case": "github 100k",
        "metric": "items/s",
        "value": 4340.2,
        "unit": "items/s",
        "target": ">= 2000",
        "ok": True,
    },
    {
        "bench": "sync",
        "case": "jira 10k",
        "metric": "re-sync requests/scope",
        "value": 1.0,
        "unit": "req",
        "target": "<= 1",
        "ok": False,
    },
    {
        "bench": "sync",
        "case": "asana 10k",
        "metric": "peak RSS",
        "value": 88.25,
        "unit": "MB",
        "target": None,
        "ok": None,
    },
]


def render(rows: Any) -> str:
    console = Console(record=True, width=200, color_system=None)
    console.print(build_table(rows))
    return console.export_text()


def has(text: str, *parts: str) -> bool:
    return all(part in text for part in parts)


def write(tmp_path: Path, name: str, data: Any) -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(data))
    return path


def test_rows_files_render_into_one_table(tmp_path: Path) -> None:
    sync = write(tmp_path, "sync", {"rows": SYNC_ROWS})
    singer = write(
        tmp_path,
        "singer",
        {
            "rows": [
                {
                    "bench": "singer",
                    "case": "github 100k",
                    "metric": "wall time okrsync/tap",
                    "value": 0.616,
                    "unit": "×",
                    "target": None,
                    "ok": None,
                }
            ]
        },
    )
    rows = load_rows(Outcome("sync", sync, 0)) + load_rows(Outcome("singer", singer, 0))
    assert len(rows) == 4
    lines = render(rows).splitlines()
    text = "\n".join(lines)
    for header in ("bench", "case", "metric", "value", "target", "ok"):
        assert header in text
    line = next(ln for ln in lines if "github 100k" in ln and "items/s" in ln)
    assert has(line, "4,340 items/s", ">= 2000", "✓")
    line = next(ln for ln in lines if "re-sync" in ln)
    assert has(line, "1 req", "✗")
    line = next(ln for ln in lines if "peak RSS" in ln)
    assert has(line, "88.2 MB")
    assert not any(mark in line for mark in "✓✗")
    assert "0.616 ×" in next(ln for ln in lines if "okrsync/tap" in ln)


def test_missing_file_is_a_failed_row(tmp_path: Path) -> None:
    rows = load_rows(Outcome("mapping", tmp_path / "nothing.json", 0))
    assert len(rows) == 1
    assert rows[0]["bench"] == "mapping"
    assert rows[0]["ok"] is False
    assert rows[0]["metric"] == "FAILED: wrote no JSON"
    line = next(ln for ln in render(rows).splitlines() if "mapping" in ln)
    assert has(line, "FAILED: wrote no JSON", "✗", "—")


def test_nonzero_exit_keeps_rows_and_adds_a_failed_row(tmp_path: Path) -> None:
    path = write(tmp_path, "sync", {"rows": SYNC_ROWS[:1]})
    rows = load_rows(Outcome("sync", path, 2, "Traceback ...\nRuntimeError: sandbox died"))
    assert [r["metric"] for r in rows] == ["items/s", "FAILED: exit 2: RuntimeError: sandbox died"]


@pytest.mark.parametrize(
    ("data", "why"),
    [
        ("not json at all", "invalid JSON rows"),
        ({"figures": []}, "invalid JSON rows"),
        ({"rows": []}, "wrote no rows"),
        ({"rows": [{"case": "x", "metric": "m", "value": "fast"}]}, "invalid JSON rows"),
        ({"rows": [{"case": "x", "value": 1.0}]}, "invalid JSON rows"),
    ],
)
def test_bad_json_is_a_failed_row(tmp_path: Path, data: Any, why: str) -> None:
    path = tmp_path / "signals.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    rows = load_rows(Outcome("signals", path, 0))
    assert rows[-1]["ok"] is False
    assert rows[-1]["metric"].startswith(f"FAILED: {why}")


def test_only_selects_and_rejects_unknown_names() -> None:
    assert [b.name for b in select("singer,sync")] == ["singer", "sync"]
    assert [b.name for b in select(None)] == [
        "sync",
        "mapping",
        "signals",
        "singer",
        "startup",
        "web",
        "webhooks",
        "projects",
    ]
    with pytest.raises(SystemExit, match="unknown bench nope"):
        select("sync,nope")


def test_main_runs_modules_and_survives_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """End to end with stand-in modules: one writes rows, one crashes without JSON."""
    pkg = tmp_path / "fakebench"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "good.py").write_text(
        "import json, sys\n"
        "path = sys.argv[sys.argv.index('--json') + 1]\n"
        f"json.dump({{'rows': {SYNC_ROWS[:1]!r}}}, open(path, 'w'))\n"
    )
    (pkg / "bad.py").write_text("raise SystemExit('boom: no sandbox')\n")
    from bench import __main__ as runner

    monkeypatch.setattr(
        runner,
        "BENCHES",
        (
            runner.Bench("sync", "fakebench.good", (), ()),
            runner.Bench("mapping", "fakebench.bad", (), ()),
        ),
    )
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "200")
    combined = tmp_path / "all.json"
    assert main(["--json", str(combined)]) == 1
    out = capsys.readouterr().out
    assert has(out, "github 100k", "4,340 items/s")
    assert "FAILED: exit 1: boom: no sandbox" in out
    assert [r["bench"] for r in json.loads(combined.read_text())["rows"]] == ["sync", "mapping"]
