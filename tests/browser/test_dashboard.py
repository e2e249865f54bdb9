"""The dashboard as a person uses it: headless chromium against the daemon on the sandbox,
asserting on what is on screen (every page's screenshot kept under test-artifacts/)."""

from __future__ import annotations

import re

from playwright.sync_api import Page, ViewportSize, expect

from okrsync.store import Store
from tests.browser.conftest import NAMES, USER, Site, screenshot

KR, KR_TITLE = "trial-conversion", "Raise trial → paid conversion"
PHONE: ViewportSize = {"width": 375, "height": 800}


def checkin_values(page: Page) -> list[float]:
    """The values of the check-in dots of the key result's chart."""
    dots = page.locator("svg.chart g.checkins circle.dot")
    return [float(v or "nan") for v in dots.evaluate_all("els => els.map(e => e.dataset.value)")]


def test_tree_to_key_result_to_tactic_to_items(page: Page, site: Site) -> None:
    """Click from the tree to a key result (its chart drawn), to one of its tactics, to the
    items behind a count: each item links to the tracker and names the rule linking it."""
    page.goto(site.url + "/")
    expect(page.locator("h1")).to_contain_text("OKR tree")
    expect(page.locator("li.objective h2").first).to_be_visible()
    assert page.locator("svg.bar.outcome").count() >= 3
    assert page.locator("svg.bar.outcome line.pace").count() >= 3  # the expected-pace tick
    screenshot(page, "tree")

    page.get_by_role("link", name=KR_TITLE).click()
    expect(page).to_have_url(re.compile(f"/kr/{KR}$"))
    expect(page.locator("h1")).to_have_text(KR_TITLE)
    chart = page.locator("svg.chart")
    expect(chart).to_be_visible()
    assert chart.locator("g.pace polyline").count() == 1
    assert checkin_values(page)[-1] == 11.2  # the newest reading, as seeded
    screenshot(page, "key-result")

    tactic = page.locator("ul.tactics li.tactic a").first
    title = tactic.inner_text()
    tactic.click()
    expect(page).to_have_url(re.compile(r"/tactic/[^/]+$"))
    expect(page.locator("h1")).to_have_text(title)
    expect(page.locator("#forecast")).to_contain_text("period ends")
    assert page.locator("svg.chart").count() == 2
    done = page.locator("table.counts tr", has_text="done").first.locator("a")
    expected = int(done.inner_text())
    screenshot(page, "tactic")

    done.click()
    expect(page).to_have_url(re.compile(r"/items\?count=done$"))
    rows = page.locator("table.items tbody tr")
    assert rows.count() == expected > 0
    first = rows.first
    assert (first.locator("td.key a").get_attribute("href") or "").startswith("http://127.0.0.1:")
    assert re.fullmatch(r"[a-z0-9-]+#\d+|[a-z0-9-]+", first.locator("td.rule").inner_text())
    expect(first).to_contain_text("done")
    screenshot(page, "items")


def test_checkin_from_the_browser_shows_the_new_value_and_point(page: Page, site: Site) -> None:
    """A signed-in user submits the form: the page shows the new value, a new chart point
    and a row recorded under the user's name; the store holds it with its author."""
    page.goto(f"{site.url}/kr/{KR}")
    before = checkin_values(page)
    page.fill("#value", "11.7")
    page.fill("#confidence", "0.8")
    page.fill("#note", "from the browser")
    page.click("section.checkin button[type=submit]")
    expect(page).to_have_url(re.compile(rf"/kr/{KR}\?recorded=\d+"))
    expect(page.locator("#current-value")).to_have_text("11.7")
    expect(page.locator("#recorded")).to_be_visible()
    row = page.locator("table.checkins tbody tr").first
    expect(row).to_contain_text("11.7")
    expect(row).to_contain_text(USER)
    expect(row).to_contain_text("from the browser")
    assert checkin_values(page) == [*before, 11.7]
    screenshot(page, "key-result-after-checkin")
    store = Store.open(site.store_url, upgrade=False)
    try:
        newest = store.checkins(KR)[-1]
    finally:
        store.close()
    assert (newest.value, newest.confidence, newest.author) == (11.7, 0.8, USER)


def test_a_bad_value_is_shown_next_to_its_field(page: Page, site: Site) -> None:
    """A value that is no number and a confidence above 1 re-render the form with each error
    beside its field and the typed text kept; nothing is recorded."""
    page.goto(f"{site.url}/kr/{KR}")
    count = page.locator("table.checkins tbody tr").count()
    page.fill("#value", "eleven")
    page.fill("#confidence", "1.5")
    page.click("section.checkin button[type=submit]")
    expect(page.locator("#value-error")).to_contain_text("is not the measured value")
    expect(page.locator("#confidence-error")).to_contain_text("from 0 to 1")
    expect(page.locator("#value")).to_have_value("eleven")
    assert page.locator("table.checkins tbody tr").count() == count
    screenshot(page, "key-result-bad-value")


def test_a_post_without_a_valid_csrf_token_is_refused(page: Page, site: Site) -> None:
    """A check-in posted without the form's token, or with a forged one, is a 403 page."""
    page.goto(f"{site.url}/kr/{KR}")
    for token in ("", "1800000000.forged"):
        answer = page.request.post(
            f"{site.url}/kr/{KR}/checkin", form={"value": "99", "csrf_token": token}
        )
        assert answer.status == 403
        assert "Check-in refused" in answer.text()
    page.reload()
    assert 99.0 not in checkin_values(page)


def test_admin_lists_connectors_and_runs_with_log_lines(page: Page, site: Site) -> None:
    """The admin page has a row per connector with its last run's status; a run's page
    shows its record and its lines from the daemon's log file."""
    page.goto(site.url + "/admin")
    for name in NAMES:
        row = page.locator(f"tr#connector-{name}")
        expect(row).to_contain_text("ok")
        expect(row.locator("a")).to_have_text(re.compile(r"#\d+"))
    assert page.locator("table.runs tbody tr").count() >= len(NAMES)
    screenshot(page, "admin")
    page.locator("tr#connector-github a").click()
    expect(page).to_have_url(re.compile(r"/admin/runs/\d+$"))
    expect(page.locator("table.fields")).to_contain_text("github")
    expect(page.locator("table.log")).to_contain_text("sync.")
    screenshot(page, "run")


def test_pages_fit_a_phone_width(page: Page, site: Site) -> None:
    """At 375 px every page fits without horizontal scrolling (tables scroll in their box)."""
    page.set_viewport_size(PHONE)
    page.goto(site.url + "/")
    tactic_href = page.locator("li.tactic a").first.get_attribute("href")
    paths = ["/", f"/kr/{KR}", tactic_href, f"{tactic_href}/items", "/admin"]
    for path in paths:
        page.goto(f"{site.url}{path}")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{path} is {width} px wide"
        name = "phone-" + (str(path).strip("/").replace("/", "-") or "tree")
        screenshot(page, name)


def test_the_picker_view_follows_the_clicks(page: Page, site: Site) -> None:
    """Picking a period and an as-of date in the tree's form (a plain GET form), then
    clicking a key result and its tactic: each page is shown as of that date and links back
    to the same tree view. The sub-objective is drawn inside its parent."""
    page.goto(site.url + "/")
    nested = page.locator("li#objective-grow-self-serve li#objective-faster-onboarding")
    expect(nested.locator("h2")).to_contain_text("New customers reach value")
    page.select_option("select[name=period]", "2026-Q4")
    page.fill("input[name=as_of]", "2026-11-15")
    page.click("form.picker button[type=submit]")
    expect(page.locator("h1")).to_contain_text("as of 2026-11-15")
    page.get_by_role("link", name=KR_TITLE).click()
    expect(page).to_have_url(re.compile(rf"/kr/{KR}\?as_of=2026-11-15&period=2026-Q4$"))
    expect(page.locator(".as-of")).to_have_text("as of 2026-11-15")
    expect(page.locator("svg.chart g.marker.today text")).to_have_text("as of 2026-11-15")
    page.locator("ul.tactics li.tactic a").first.click()
    expect(page).to_have_url(re.compile(r"/tactic/[^/?]+\?as_of=2026-11-15&period=2026-Q4$"))
    page.get_by_role("link", name="OKR tree").last.click()
    expect(page).to_have_url(re.compile(r"/\?as_of=2026-11-15&period=2026-Q4$"))
    expect(page.locator("select[name=period]")).to_have_value("2026-Q4")
