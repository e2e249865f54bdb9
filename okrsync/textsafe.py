"""Tracker text made safe to store and to print: control characters out, lengths capped.

Tracker data is untrusted: a title can carry terminal escape sequences (clear-screen, OSC 8
links, cursor moves) or be hundreds of megabytes long. `clean_text` is applied to every
WorkItem text field on ingest (`clean_item`, called by sync.py before a page reaches the
store); `printable` is for anything printed to a terminal (it keeps line breaks and tabs).

An escape sequence is removed whole (ESC, its parameters and its final byte), so nothing of
it is left to show as `[2J`; any other C0/C1 control character and DEL is removed alone.
"""

from __future__ import annotations

import dataclasses
import re

from okrsync.models import WorkItem

TITLE_LIMIT = 2000
FIELD_LIMIT = 500
LABELS_LIMIT = 200

# CSI (ESC [ or U+009B, parameters, one final byte); OSC/DCS/SOS/PM/APC strings up to BEL or
# ST (ESC \ or U+009C) or the end of the text; any other ESC + one character.
_ESCAPE = re.compile(
    r"(?:\x1b\[|\x9b)[\x20-\x3f]*[\x40-\x7e]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[\x20-\x7e]?"
)
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_CONTROLS_AND_BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_BREAKS = re.compile(r"[\t\n]")


def printable(s: str) -> str:
    """`s` without escape sequences, C0/C1 controls and DEL; keeps newlines and tabs."""
    if s.isprintable():
        return s
    return _CONTROLS.sub("", _ESCAPE.sub("", s))


def markup_safe(text: object) -> str:
    """`text` ready to embed in rich markup: control sequences stripped, markup escaped."""
    from rich.markup import escape  # only commands that print rich markup pay for rich

    return escape(printable(str(text)))


def clean_text(s: str, limit: int) -> str:
    """`s` on one line without control characters, cut to at most `limit` characters.

    Tabs and newlines become spaces; carriage returns and every other control go.
    """
    if s.isprintable() and len(s) <= limit:
        return s
    # Cut first (with room for what is removed) so a huge field is never scanned whole.
    head = s[: limit * 4 + 64]
    head = _BREAKS.sub(" ", _ESCAPE.sub("", head))
    return _CONTROLS_AND_BREAKS.sub("", head)[:limit]


def _clean_opt(s: str | None, limit: int = FIELD_LIMIT) -> str | None:
    return None if s is None else clean_text(s, limit)


def _labels(labels: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(clean_text(label, FIELD_LIMIT) for label in labels[:LABELS_LIMIT])


def _custom(custom: dict[str, str]) -> dict[str, str]:
    return {clean_text(k, FIELD_LIMIT): clean_text(v, FIELD_LIMIT) for k, v in custom.items()}


def _is_clean(item: WorkItem) -> bool:
    """True when no field of `item` needs cleaning: the common case, checked in about a
    microsecond (one `isprintable` over the fields joined; when those short fields total
    at most FIELD_LIMIT characters, none of them can be over it)."""
    title, url, custom = item.title, item.url or "", item.custom
    if len(title) > TITLE_LIMIT or len(url) > TITLE_LIMIT or len(item.labels) > LABELS_LIMIT:
        return False
    if len(item.assignee_ids) > LABELS_LIMIT or len(item.status_names) > LABELS_LIMIT:
        return False
    if len(item.boards) > LABELS_LIMIT or len(item.board_names) > LABELS_LIMIT:
        return False
    short = (item.key, item.parent_key or "", item.status_raw, item.item_type or "",
             item.container or "", item.milestone or "", item.section or "",
             item.assignee or "", item.container_name or "", *item.labels,
             *item.assignee_ids, *item.status_names, *custom, *custom.values(),
             *item.boards, *item.board_names, item.iteration or "")  # fmt: skip
    rest = "".join(short)
    if not (title + url + rest).isprintable():
        return False
    return len(rest) <= FIELD_LIMIT or max(map(len, short)) <= FIELD_LIMIT


def clean_item(item: WorkItem) -> WorkItem:
    """`item` with every text field cleaned and capped; the same object when nothing changes."""
    if _is_clean(item):
        return item
    return dataclasses.replace(
        item,
        title=clean_text(item.title, TITLE_LIMIT),
        key=clean_text(item.key, FIELD_LIMIT),
        parent_key=_clean_opt(item.parent_key),
        url=_clean_opt(item.url, TITLE_LIMIT),
        status_raw=clean_text(item.status_raw, FIELD_LIMIT),
        item_type=_clean_opt(item.item_type),
        container=_clean_opt(item.container),
        milestone=_clean_opt(item.milestone),
        section=_clean_opt(item.section),
        assignee=_clean_opt(item.assignee),
        labels=_labels(item.labels),
        custom=_custom(item.custom),
        container_name=_clean_opt(item.container_name),
        assignee_ids=_labels(item.assignee_ids),
        status_names=_labels(item.status_names),
        boards=_labels(item.boards),
        board_names=_labels(item.board_names),
        iteration=_clean_opt(item.iteration),
    )
