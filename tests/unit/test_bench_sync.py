"""`bench.bench_sync`'s arithmetic: the page count it compares requests with, and the median;
`bench.bench_singer`'s verdicts."""

from __future__ import annotations

from bench.bench_singer import Side, target_lines, targets
from bench.bench_sync import listing_pages, table_rows


def truth(scope: str, kind: str, n: int, deleted: bool = False) -> list[dict[str, object]]:
    return [{"scope": scope, "kind": kind, "deleted": deleted} for _ in range(n)]


def test_pages_are_counted_per_listing() -> None:
    """A page never spans two projects: 150 + 50 issues in two projects take 2 + 1 pages,
    not ceil(200 / 100) = 2."""
    assert listing_pages("jira", truth("A", "issue", 150) + truth("B", "epic", 50)) == 3
    assert listing_pages("jira_dc", truth("A", "issue", 1001) + truth("B", "issue", 999)) == 3


def test_asana_sections_are_their_own_listing_and_github_milestones_cost_nothing() -> None:
    asana = truth("p", "task", 100) + truth("p", "section", 4)
    github = truth("o/r", "issue", 100) + truth("o/r", "milestone", 7)
    assert listing_pages("asana", asana) == 2
    assert listing_pages("github", github) == 1


def test_deleted_items_are_not_listed() -> None:
    assert listing_pages("github", truth("o/r", "issue", 100) + truth("o/r", "issue", 5, True)) == 1


def test_rows_show_the_median_run_and_the_highest_rss() -> None:
    def run(seconds: float, rss: float) -> dict[str, float]:
        return {
            "items": 100_000,
            "seconds": seconds,
            "requests": 1001,
            "pages": 1001,
            "rss_mb": rss,
            "resync_requests": 3,
            "scopes": 3,
        }

    runs = sorted([run(12.5, 99), run(8.0, 101), run(9.0, 140)], key=lambda f: f["seconds"])
    rows = {r["metric"]: r for r in table_rows("github", 100_000, runs[1], runs)}
    assert rows["full sync"]["value"] == 100_000 / 9.0
    assert rows["full sync"]["ok"] is True
    assert rows["peak RSS"]["value"] == 140
    assert "median of 3" in str(rows["full sync"]["case"])
    assert rows["requests / pages"]["value"] == 1.0


def test_the_throughput_target_applies_at_scale_only() -> None:
    """Targets are set for the ~100k sync; the 10k run reports its figures without a verdict
    (it shows peak RSS staying flat), and a slow 100k run fails its row."""
    slow = {
        "items": 10_000,
        "seconds": 2.0,
        "requests": 101,
        "pages": 100,
        "rss_mb": 90,
        "resync_requests": 3,
        "scopes": 3,
    }
    small = {r["metric"]: r for r in table_rows("asana", 10_000, slow)}
    assert small["full sync"]["ok"] is None
    assert small["peak RSS"]["ok"] is True
    big = {r["metric"]: r for r in table_rows("asana", 100_000, {**slow, "items": 100_000})}
    assert big["full sync"]["value"] == 50_000
    assert big["full sync"]["ok"] is True
    slower = {**slow, "items": 100_000, "seconds": 20.0}
    assert {r["metric"]: r for r in table_rows("asana", 100_000, slower)}["full sync"][
        "ok"
    ] is False


def test_singer_targets_are_three_times_the_speed_within_a_quarter_more_memory() -> None:
    """bench_singer's verdicts: items/s at least 3x the tap's; peak RSS at most 1.25x."""

    def side(name: str, wall_s: float, rss_mb: float) -> Side:
        return Side(name, wall_s=wall_s, rss_mb=rss_mb, items=30_000)

    tap = side("tap", 9.0, 64.0)
    assert targets(side("okrsync", 3.0, 80.0), tap) == (True, True)
    assert targets(side("okrsync", 3.1, 80.1), tap) == (False, False)
    lines = target_lines(side("okrsync", 2.0, 70.0), tap)
    assert lines[0] == "target items/s okrsync >= 3 x tap: 4.50 x, met"
    assert lines[1] == "target peak RSS okrsync <= 1.25 x tap: 70.0 MB vs 64.0 MB (1.09 x), met"
