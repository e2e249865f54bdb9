"""The `file` source: a CSV or JSON file of dated values, e.g. a spreadsheet exported on a
schedule.

    CSV    a header row `date,value` (other columns are ignored), then one row per reading
    JSON   a list of objects [{"date": "2026-11-02", "value": 9.4}, ...]

`date` is a date (00:00 UTC that day) or an ISO time (UTC unless it names a zone). The
newest row is the reading; a backfill takes every row since `since`. Rows dated in the
future are left out.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from okrsync.sources import Reading, SourceFailure, SourceSpec, as_utc, number, since_filter

MAX_BYTES = 20 * 1024 * 1024  # a spreadsheet export, not a data lake


def read_file(spec: SourceSpec, *, since: datetime | None, now: datetime) -> list[Reading]:
    """The file's newest reading, or its readings since `since` (oldest first)."""
    path = Path(str(spec.options["path"]))
    text = _text(path)
    rows = _json_rows(text) if _format(spec, path) == "json" else _csv_rows(text)
    return since_filter(rows, since, now)


def _format(spec: SourceSpec, path: Path) -> str:
    given = spec.options.get("format")
    if isinstance(given, str):
        return given
    return "json" if path.suffix.lower() == ".json" else "csv"


def _text(path: Path) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise SourceFailure(f"{path} is {size} bytes, over the {MAX_BYTES}-byte cap")
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SourceFailure(f"{path} does not exist") from None
    except OSError as exc:
        raise SourceFailure(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise SourceFailure(f"{path} is not UTF-8 text") from None


def _csv_rows(text: str) -> list[Reading]:
    reader = csv.DictReader(io.StringIO(text), strict=True)
    fields = [f.strip().lower() for f in reader.fieldnames or []]
    if "date" not in fields or "value" not in fields:
        raise SourceFailure("the CSV's first row must be a header naming 'date' and 'value'")
    reader.fieldnames = fields
    try:
        return [_reading(row, f"row {reader.line_num}") for row in reader]
    except csv.Error as exc:
        raise SourceFailure(f"not CSV: {exc}") from None


def _json_rows(text: str) -> list[Reading]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SourceFailure(f"not JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise SourceFailure('the JSON must be a list of {"date": ..., "value": ...} objects')
    return [_reading(r, f"item {i}") for i, r in enumerate(data)]


def _reading(row: dict[str, Any], where: str) -> Reading:
    try:
        return Reading(as_utc(row.get("date"), "date"), number(row.get("value")))
    except SourceFailure as exc:
        raise SourceFailure(f"{where}: {exc.reason}") from None
