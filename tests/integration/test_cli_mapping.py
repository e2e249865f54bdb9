"""`okrsync mappings check|preview` and `okrsync remap` through the real CLI."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from okrsync.models import ItemKind, Page, StatusCategory, WorkItem
from okrsync.store import Store
from okrsync.store.tables import ITEM_LINK
from tests.helpers import TREE, run_cli, write

CONFIG = """
[store]
url = "sqlite:///data/okrsync.db"

[mappings]
paths = ["okrs"]

[[connectors]]
name = "jira"
type = "jira"
base_url = "https://example.atlassian.net"
scope = ["ALPHA"]
token_env = "JIRA_TOKEN"
"""
RULES = """
[[tactic.rule]]
epic = "ALPHA-1"

[[tactic]]
id = "speed"
key_result = "latency"
title = "Speed"

[[tactic.rule]]
id = "slow-pages"
connector = "jira"
title = '(?i)slow'
"""
T0 = datetime(2026, 10, 5, tzinfo=UTC)


def item(
    key: str, title: str, parent: str | None = None, kind: ItemKind = ItemKind.ISSUE
) -> WorkItem:
    return WorkItem(
        connector="jira",
        external_id=key,
        key=key,
        kind=kind,
        title=title,
        status=StatusCategory.TODO,
        status_raw="To Do",
        created=T0,
        updated=T0,
        container="ALPHA",
        parent_key=parent,
    )


def setup(tmp_path: Path, rules: str = RULES, items: bool = True) -> Path:
    """A config, a tree with rules and (optionally) a store holding a small Jira project."""
    write(tmp_path / "okrsync.toml", CONFIG)
    write(tmp_path / "okrs" / "main.toml", TREE + rules)
    if items:
        store = Store.open(f"sqlite:///{tmp_path / 'data' / 'okrsync.db'}")
        page = [
            item("ALPHA-1", "Checkout epic", kind=ItemKind.EPIC),
            item("ALPHA-2", "Pay button", "ALPHA-1"),
            item("ALPHA-3", "Slow pay button", "ALPHA-2"),
            item("ALPHA-4", "Fix login"),
        ]
        store.commit_page("jira", Page(page, {"v": 1}))
        store.close()
    return tmp_path


def links(cwd: Path) -> list[tuple[str, str, str]]:
    engine = sa.create_engine(f"sqlite:///{cwd / 'data' / 'okrsync.db'}")
    with engine.connect() as conn:
        q = sa.select(ITEM_LINK.c.external_id, ITEM_LINK.c.tactic_id, ITEM_LINK.c.rule_id)
        rows = sorted((r[0], r[1], r[2]) for r in conn.execute(q))
    engine.dispose()
    return rows


EXPECTED = [
    ("ALPHA-2", "checkout", "checkout#1"),
    ("ALPHA-3", "checkout", "checkout#1"),
    ("ALPHA-3", "speed", "slow-pages"),
]


def test_check_clean_without_a_store(tmp_path: Path) -> None:
    """A valid mapping with no store yet exits 0 and says rules were not tried."""
    r = run_cli("mappings", "check", cwd=setup(tmp_path, items=False))
    assert r.code == 0, r.stdout + r.stderr
    assert "note: no store yet, so rules were not tried against stored items" in r.stdout
    assert r.stdout.endswith("1 file(s), 2 tactics, 2 rules: no errors, 0 warning(s)\n")
    assert not (tmp_path / "data" / "okrsync.db").exists()


def test_check_reports_every_error_with_file_line_and_exits_2(tmp_path: Path) -> None:
    """Errors list file:line, what is wrong and the fix; exit code 2."""
    bad = '[[tactic.rule]]\nconector = "jira"\n[[tactic.rule]]\nconnector = "jria"\n'
    cwd = setup(tmp_path, bad, items=False)
    r = run_cli("mappings", "check", cwd=cwd)
    assert r.code == 2
    line = TREE.strip().count("\n") + 2  # the first [[tactic.rule]]
    path = cwd / "okrs" / "main.toml"
    assert r.stdout.splitlines() == [
        f"error: {path}:{line}: rule 'checkout#1' of tactic 'checkout': has no "
        "condition, so it would attach nothing; add at least one of connector, container, "
        "epic, parent, labels_any, labels_all, milestone, section, type, keys, assignee, "
        "iteration, title, custom (an 'exclude' alone selects nothing)",
        f"error: {path}:{line + 1}: rule 'checkout#1' of tactic 'checkout': unknown key "
        "'conector' in a rule; did you mean 'connector'?",
        f"error: {path}:{line + 3}: rule 'checkout#2' of tactic 'checkout': connector "
        "'jria' is not configured in the config file's [[connectors]]; did you mean 'jira'?",
        "3 error(s); nothing was changed. Fix them and run the check again.",
    ]


def test_check_warnings_fail_only_with_strict(tmp_path: Path) -> None:
    """A rule matching nothing and overlaps are warnings: exit 0, or 1 with --strict."""
    rules = RULES + '[[tactic.rule]]\nkeys = "ZETA-9"\n'
    cwd = setup(tmp_path, rules)
    r = run_cli("mappings", "check", cwd=cwd)
    assert r.code == 0, r.stderr
    assert "rule 'speed#2' of tactic 'speed' matches none of the 3 stored items" in r.stdout
    assert (
        "warning: 1 item(s) count for several tactics (checkout, speed): ALPHA-3; fine if "
        "intended, else narrow a rule or add an 'exclude'"
    ) in r.stdout
    assert run_cli("mappings", "check", "--strict", cwd=cwd).code == 1
    assert links(cwd) == []


def test_preview_shows_rules_unmapped_and_overlaps_and_writes_nothing(tmp_path: Path) -> None:
    """Preview lists per-rule counts with samples, unmapped items and overlaps."""
    cwd = setup(tmp_path)
    r = run_cli("mappings", "preview", cwd=cwd)
    assert r.code == 0, r.stderr
    out = r.stdout
    assert "Preview over 3 stored work items (nothing is written)" in out
    assert "checkout  Checkout revamp: 2 item(s)" in out
    assert "matches 2, 2 only through this rule" in out
    assert "rule slow-pages (" in out
    assert "      jira  ALPHA-3  Slow pay button" in out
    assert "Unmapped: 1 work item(s) attached to no tactic" in out
    assert "  jira  ALPHA: 1  e.g. ALPHA-4" in out
    assert "  ALPHA-3  Slow pay button  → checkout, speed" in out
    assert links(cwd) == []


def test_remap_derives_links_and_a_broken_file_keeps_them(tmp_path: Path) -> None:
    """remap writes the links; after a bad edit it exits 2 and leaves them untouched."""
    cwd = setup(tmp_path)
    r = run_cli("remap", "--as-of", "2026-11-01", cwd=cwd)
    assert r.code == 0, r.stderr
    assert "remapped 4 stored items with 2 rules: 3 links (3 added, 0 removed)" in r.stdout
    assert links(cwd) == EXPECTED
    write(cwd / "okrs" / "main.toml", TREE + RULES + "[[tactic.rule]]\ntitle = '('\n")
    r = run_cli("remap", cwd=cwd)
    assert r.code == 2
    assert "title pattern '(' is not a valid regular expression" in r.stderr
    assert links(cwd) == EXPECTED


def test_remap_after_an_edit_writes_only_the_difference(tmp_path: Path) -> None:
    """Dropping a rule removes exactly its links and keeps the others."""
    cwd = setup(tmp_path)
    assert run_cli("remap", cwd=cwd).code == 0
    write(cwd / "okrs" / "main.toml", TREE + RULES.split("[[tactic.rule]]\nid")[0])
    r = run_cli("remap", cwd=cwd)
    assert r.code == 0, r.stderr
    assert "2 links (0 added, 1 removed)" in r.stdout
    assert links(cwd) == EXPECTED[:2]


# -- issue 12: rules that cannot hang, terminal-safe output, guarded loads ------------------

EVIL_RULES = """
[[tactic.rule]]
title = '(a+)+$'
"""


def test_a_backtracking_title_rule_cannot_hang_check_remap_or_preview(tmp_path: Path) -> None:
    """`(a+)+$` against a stored "a"*40 + "b": check, remap and preview all finish."""
    cwd = setup(tmp_path, EVIL_RULES, items=False)
    store = Store.open(f"sqlite:///{cwd / 'data' / 'okrsync.db'}")
    page = [item("ALPHA-1", "a" * 40 + "b"), item("ALPHA-2", "aaaa")]
    store.commit_page("jira", Page(page, {"v": 1}))
    store.close()
    for args in (("mappings", "check"), ("remap",), ("mappings", "preview")):
        r = run_cli(*args, cwd=cwd, timeout=60)  # Python's re would need years here
        assert r.code == 0, (args, r.stdout, r.stderr)
    assert links(cwd) == [("ALPHA-2", "checkout", "checkout#1")]


def test_a_title_rule_re2_cannot_run_is_refused_by_check(tmp_path: Path) -> None:
    """A look-behind is an error with file:line and the fix; exit 2."""
    cwd = setup(tmp_path, "[[tactic.rule]]\ntitle = '(?<=fix )pay'\n", items=False)
    r = run_cli("mappings", "check", cwd=cwd)
    assert r.code == 2
    line = TREE.strip().count("\n") + 3
    assert f"error: {cwd / 'okrs' / 'main.toml'}:{line}: rule 'checkout#1' " in r.stdout
    assert "RE2 does not support look-behind; rewrite without it" in r.stdout


def test_preview_prints_no_terminal_escapes_from_tracker_text(tmp_path: Path) -> None:
    """Clear-screen and OSC 8 sequences in stored titles and keys never reach the terminal."""
    cwd = setup(tmp_path)
    store = Store.open(f"sqlite:///{cwd / 'data' / 'okrsync.db'}")
    evil = "\x1b[2J\x1b]8;;http://evil.example/\x07Slow\x1b]8;;\x07 pay\x9b31m"
    page = [item("ALPHA-5", evil, "ALPHA-1"), item("ALPHA-6\x1b[1A", "Fix\x07 login")]
    store.commit_page("jira", Page(page, {"v": 2}))
    store.close()
    r = run_cli("mappings", "preview", cwd=cwd)
    assert r.code == 0, r.stderr
    assert "      jira  ALPHA-5  Slow pay" in r.stdout
    assert "ALPHA-6" in r.stdout
    assert not [c for c in r.stdout if (ord(c) < 32 and c != "\n") or 0x7F <= ord(c) <= 0x9F]


def test_an_empty_mapping_set_is_refused_unless_allowed(tmp_path: Path) -> None:
    """No objectives/key results/tactics in the folder: check, okrs sync and remap exit 2
    naming [mappings].paths and --allow-empty; with the flag they go through."""
    cwd = setup(tmp_path, items=False)
    write(cwd / "okrs" / "main.toml", "# the team has not written its OKRs yet\n")
    for args in (("mappings", "check"), ("okrs", "sync"), ("remap",)):
        r = run_cli(*args, cwd=cwd)
        assert r.code == 2, (args, r.stdout, r.stderr)
        said = " ".join((r.stdout + r.stderr).split())
        assert f"[mappings].paths = {cwd / 'okrs'}" in said, said
        assert "--allow-empty" in said
        r = run_cli(*args, "--allow-empty", cwd=cwd)
        assert r.code == 0, (args, r.stdout, r.stderr)


def test_archiving_most_of_the_tree_needs_yes(tmp_path: Path) -> None:
    """After a mis-mount, okrs sync and remap refuse to archive the tree (exit 2, nothing
    archived) until --yes; keeping the files loads as usual."""
    cwd = setup(tmp_path)
    assert run_cli("okrs", "sync", cwd=cwd).code == 0
    (cwd / "okrs" / "main.toml").unlink()
    write(cwd / "okrs" / "other.toml", '[[objective]]\nid = "new"\ntitle = "N"\nperiod = "2026"\n')
    for args in (("okrs", "sync"), ("remap",)):
        r = run_cli(*args, cwd=cwd)
        assert r.code == 2, (args, r.stdout, r.stderr)
        said = " ".join(r.stderr.split())
        assert "would archive 5 of the 5 objectives, key results and tactics" in said
        assert "run the command again with --yes" in said
    assert "Grow revenue" in run_cli("okrs", "show", cwd=cwd).stdout
    r = run_cli("okrs", "sync", "--yes", cwd=cwd)
    assert r.code == 0, r.stderr
    assert "5 archived" in r.stdout


# -- issue 14: rules written from the values stored items carry --------------------------------


def with_values(cwd: Path) -> Path:
    """Items with labels, a milestone, a custom field and an Asana-like container name."""
    from dataclasses import replace

    store = Store.open(f"sqlite:///{cwd / 'data' / 'okrsync.db'}")
    page = [
        replace(item("ALPHA-5", "Grow"), labels=("growth", "okr"), milestone="v2"),
        replace(item("ALPHA-6", "Grow more"), labels=("Growth",), custom={"team": "Web"}),
        replace(item("ALPHA-7", "Gone"), labels=("ghost",)),
        replace(item("BETA-1", "Elsewhere"), container="BETA", container_name="Beta project"),
    ]
    store.commit_page("jira", Page(page, {"v": 2}))
    store.commit_page("jira", Page([], {"v": 3}, deleted=["ALPHA-7"]))
    store.close()
    return cwd


def test_values_lists_stored_values_most_common_first(tmp_path: Path) -> None:
    """`mappings values` counts live items per value, ignoring case, most common first."""
    cwd = with_values(setup(tmp_path))
    r = run_cli("mappings", "values", "--field", "labels", cwd=cwd)
    assert r.code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[2:] == ["labels: 2 value(s)", "  Growth       2", "  okr          1"]
    r = run_cli("mappings", "values", cwd=cwd)
    assert r.code == 0, r.stderr
    assert "container: 2 value(s)" in r.stdout
    assert "  ALPHA       6" in r.stdout
    assert "  BETA        1  (also: Beta project)" in r.stdout
    assert "custom.team: 1 value(s)" in r.stdout
    assert "milestone: 1 value(s)" in r.stdout
    assert "  issue       6" in r.stdout  # type: the kind, Jira-like items have no tracker type
    r = run_cli("mappings", "values", "--connector", "asana", cwd=cwd)
    assert r.code == 0, r.stderr
    assert "no live stored item of connector 'asana' carries a value here" in r.stdout


def test_check_suggests_a_stored_value_for_a_value_no_item_carries(tmp_path: Path) -> None:
    """`labels_any = "grwoth"` warns at its line with did-you-mean "growth"; --strict exits 1."""
    rules = '[[tactic.rule]]\ncontainer = "Beta project"\nlabels_any = ["grwoth"]\n'
    cwd = with_values(setup(tmp_path, rules))
    r = run_cli("mappings", "check", cwd=cwd)
    assert r.code == 0, r.stderr
    line = TREE.strip().count("\n") + 4
    assert (
        f"warning: {cwd / 'okrs' / 'main.toml'}:{line}: rule 'checkout#1' of tactic 'checkout': "
        "'labels_any' value 'grwoth' is on no stored item; did you mean 'Growth' (2 item(s))? "
        "(`okrsync mappings values --field labels` lists them)"
    ) in r.stdout.splitlines()
    assert "'container' value" not in r.stdout  # the container's name is a stored value
    assert run_cli("mappings", "check", "--strict", cwd=cwd).code == 1


def test_preview_names_an_unmapped_container_by_its_name(tmp_path: Path) -> None:
    """Unmapped items are grouped under their container with its stored name."""
    cwd = with_values(setup(tmp_path))
    r = run_cli("mappings", "preview", cwd=cwd)
    assert r.code == 0, r.stderr
    assert "  jira  BETA (Beta project): 1  e.g. BETA-1" in r.stdout
