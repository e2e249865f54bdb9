"""Find where a key sits in a TOML text, so messages can name file:line.

`tomllib` gives positions only for syntax errors; for validation errors we index the text's
table headers (including nested arrays of tables such as `[[tactic.rule]]`) and key lines.
`TomlIndex` reads a text once and answers every lookup from a dict, so validating a file of
thousands of tactics stays linear. Lines inside multi-line strings and multi-line arrays
are values, never headers or keys; keys inside inline tables are not indexed (a lookup
of one gives the line of its table's header; `RawRule.line` tries the key holding it first).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from pathlib import Path

from okrsync.errors import ConfigError

# Possessive quantifiers: no backtracking, so a long line costs one pass.
_BARE = r"[A-Za-z0-9_-]++"
_BASIC = r'"(?:[^"\\\n]|\\.)*+"'
_LITERAL = r"'[^'\n]*+'"
_PART = rf"(?:{_BASIC}|{_LITERAL}|{_BARE})"
# A line that starts a table header (group 1: `[` or `[[`, group 2: the rest of the line)
# or a key (group 3). Other lines (blank, comments, a value's continuation) are skipped.
_KEY_LINE = rf"({_PART}(?:[ \t]*+\.[ \t]*+{_PART})*+)[ \t]*+="
_LINE = re.compile(rf"^[ \t]*+(?:(\[\[?)([^\n]*)|{_KEY_LINE})", re.M)
# The same, but only the key lines whose value may go on past the line (an array, an
# inline table, a multi-line string): all that finding the headers has to look at.
_HEADER_LINE = re.compile(
    rf"^[ \t]*+(?:(\[\[?)([^\n]*)|{_KEY_LINE}(?=[^\n]*?(?:[\[{{]|\"\"\"|\'\'\')))", re.M
)
_PART_RE = re.compile(rf"\s*+({_PART})\s*+(?:\.|$)")
# What a value spanning lines is made of: line ends, multi-line string openers, one-line
# strings (skipped whole), comments and brackets.
_TOKEN = re.compile(rf"\n|\"\"\"|'''|{_BASIC}|{_LITERAL}|#[^\n]*+|[\[\]{{}}]")
_MULTI = ('"""', "'''")
_OPENS = re.compile(r"[\[{]|\"\"\"|'''")  # a value that may go on past its line
_POS = re.compile(r"\(at line (\d+), column (\d+)\)")
Loc = Sequence[str | int]
Path_ = tuple[str | int, ...]


@functools.lru_cache(maxsize=1024)  # a file repeats the same few keys and headers
def _parts(dotted: str) -> tuple[str, ...]:
    """`a."b.c".d` → ('a', 'b.c', 'd'): dots inside quotes belong to the key."""
    return tuple(_unquote(m.group(1)) for m in _PART_RE.finditer(dotted.strip()))


def _unquote(part: str) -> str:
    if len(part) >= 2 and part[0] == part[-1] and part[0] in "\"'":
        return part[1:-1]
    return part


class TomlIndex:
    """The table headers and key lines of one TOML text, each found in one pass.

    The text is searched for header and key lines only; a value that may span lines (an
    array, an inline table, a multi-line string) is followed to its end, so nothing inside
    it is taken for a header or a key. Headers (every entry's own line) are found at once;
    keys, needed only to point at a problem, on the first lookup that needs them.
    """

    def __init__(self, text: str) -> None:
        self._text = text
        self._keys: dict[Path_, int] | None = None
        self.headers = _Walk(text, None).headers  # a header's last line

    @property
    def keys(self) -> dict[Path_, int]:
        """A key's first line, by its full path."""
        if self._keys is None:
            self._keys = {}
            _Walk(self._text, self._keys)
        return self._keys

    def line(self, loc: Loc) -> int | None:
        """Line (1-based) of the key at `loc`, else of the nearest enclosing table header."""
        target = tuple(loc)
        if target and isinstance(target[-1], str):  # an array element is never a key
            found = self.keys.get(target)
            if found is not None:
                return found
        best = None
        for n in range(1, len(target) + 1):
            found = self.headers.get(target[:n])
            if found is not None and (best is None or found > best):
                best = found
        return best


class _Walk:
    """One pass over a text: headers always, keys into `keys` when given."""

    def __init__(self, text: str, keys: dict[Path_, int] | None) -> None:
        self.headers: dict[Path_, int] = {}
        self._arrays: dict[Path_, int] = {}
        self._current: Path_ = ()
        pattern = _HEADER_LINE if keys is None else _LINE
        lineno, counted, pos = 1, 0, 0
        while m := pattern.search(text, pos):
            start = m.start()
            lineno += text.count("\n", counted, start)
            counted = start
            opener, rest, key = m.groups()
            if opener:
                self._header(lineno, opener, rest)
                pos = m.end()
            else:
                if keys is not None:
                    keys.setdefault((*self._current, *_parts(key)), lineno)
                pos = _value_end(text, m.end())

    def _header(self, lineno: int, opener: str, rest: str) -> None:
        if opener == "[[":
            base = self._resolve(_parts(rest[: rest.find("]]")]))
            self._arrays[base] = self._arrays.get(base, -1) + 1
            self._current = (*base, self._arrays[base])
        else:
            self._current = self._resolve(_parts(rest[: rest.find("]")]))
        self.headers[self._current] = lineno

    def _resolve(self, parts: tuple[str, ...]) -> Path_:
        out: list[str | int] = []
        for i, p in enumerate(parts):
            out.append(p)
            if i < len(parts) - 1 and tuple(out) in self._arrays:
                out.append(self._arrays[tuple(out)])
        return tuple(out)


def _value_end(text: str, pos: int) -> int:
    """Where the value starting at `pos` ends: the line end after its last line."""
    eol = text.find("\n", pos)
    eol = len(text) if eol == -1 else eol
    if _OPENS.search(text, pos, eol) is None:
        return eol  # the common case: a value on one line that opens nothing
    depth = 0
    while tok := _TOKEN.search(text, pos):
        t, pos = tok.group(), tok.end()
        if t == "\n":
            if depth == 0:
                return tok.start()
        elif t in _MULTI:
            end = _close(text, pos, t)
            if end is None:
                return len(text)
            pos = end
        elif t in ("[", "{"):
            depth += 1
        elif t in ("]", "}"):
            depth = max(0, depth - 1)
    return len(text)


def _close(text: str, pos: int, delim: str) -> int | None:
    """The index just after the delimiter that closes a multi-line string."""
    while (i := text.find(delim, pos)) != -1:
        j = i
        while j > pos and text[j - 1] == "\\":
            j -= 1
        if delim == "'''" or (i - j) % 2 == 0:
            end = i + 3
            while end < min(len(text), i + 5) and text[end] == delim[0]:
                end += 1  # up to two quotes of the content may sit before the delimiter
            return end
        pos = i + 1
    return None


def locate(text: str, loc: Loc) -> int | None:
    """Line (1-based) of the key at `loc`, else of the nearest enclosing table header.

    Indexes `text` on every call: for many lookups in one text, build a `TomlIndex` once.
    """
    return TomlIndex(text).line(loc)


def toml_error(path: Path, exc: ValueError) -> ConfigError:
    """A syntax error as `file:line:col: what is wrong` plus a hint."""
    m = _POS.search(str(exc))
    msg = _POS.sub("", str(exc)).strip()
    if m:
        return ConfigError(
            f"{path}:{m.group(1)}:{m.group(2)}: TOML syntax error: {msg} "
            "(check quotes, brackets and '=' on that line)"
        )
    return ConfigError(f"TOML syntax error: {msg}", file=str(path))
