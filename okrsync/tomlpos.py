"""Find where a key sits in a TOML text, so messages can name file:line.

`tomllib` gives positions only for syntax errors; for validation errors we walk the text's
table headers (including nested arrays of tables such as `[[tactic.rule]]`) and key lines.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from pathlib import Path

from okrsync.errors import ConfigError

_KEY = re.compile(r"""^\s*([A-Za-z0-9_\-."' ]+?)\s*=""")
_POS = re.compile(r"\(at line (\d+), column (\d+)\)")
Loc = Sequence[str | int]


def _parts(dotted: str) -> tuple[str, ...]:
    return tuple(p.strip().strip('"').strip("'") for p in dotted.split("."))


def locate(text: str, loc: Loc) -> int | None:
    """Line (1-based) of the key at `loc`, else of the nearest enclosing table header."""
    target = tuple(loc)
    arrays: dict[tuple[str | int, ...], int] = {}
    current: tuple[str | int, ...] = ()
    best: int | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if line.startswith("[["):
            base = _resolve(_parts(line[2 : line.find("]]")]), arrays)
            arrays[base] = arrays.get(base, -1) + 1
            current = (*base, arrays[base])
        elif line.startswith("["):
            current = _resolve(_parts(line[1 : line.find("]")]), arrays)
        else:
            m = _KEY.match(line)
            if m and (*current, *_parts(m.group(1))) == target:
                return lineno
            continue
        if current == target[: len(current)]:
            best = lineno
    return best


def _resolve(
    parts: tuple[str, ...], arrays: dict[tuple[str | int, ...], int]
) -> tuple[str | int, ...]:
    out: list[str | int] = []
    for i, p in enumerate(parts):
        out.append(p)
        if i < len(parts) - 1 and tuple(out) in arrays:
            out.append(arrays[tuple(out)])
    return tuple(out)


def toml_error(path: Path, exc: tomllib.TOMLDecodeError) -> ConfigError:
    """A syntax error as `file:line:col: what is wrong` plus a hint."""
    m = _POS.search(str(exc))
    msg = _POS.sub("", str(exc)).strip()
    if m:
        return ConfigError(
            f"{path}:{m.group(1)}:{m.group(2)}: TOML syntax error: {msg} "
            "(check quotes, brackets and '=' on that line)"
        )
    return ConfigError(f"TOML syntax error: {msg}", file=str(path))
