"""The built-in usage page over real HTTP: access, the numbers against the raw rows, errors in
the query string, CSV; and what a person sees in headless Chromium, on Postgres."""

from __future__ import annotations

import base64
import csv
import io
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.api.ui import money
from tests.db import pg
from tests.e2e.conftest import GatewayFactory, RunningGateway, Upstreams
from tests.e2e.ui_data import FAILOVER_REQUEST_ID, seed_traffic, wait_for_rows

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
COOKIE_NAME = "switchyard_ui"
MASTER = "sk-master-ui-test"
PROVIDERS = ["ollama", "deepseek", "openrouter"]  # seed_traffic's failover order
pg_database = pg.pg_database


@pytest.fixture
def pg_url(pg_database: tuple[str, str]) -> str:
    url = pg_database[1]
    pg.query(url, "TRUNCATE usage, usage_hourly, usage_daily, usage_latency_hourly, "
                  "api_keys, teams")
    return url


def spool_in(tmp_path: Path) -> str:
    """Keep the usage writer's spool out of the working tree."""
    return (f"metering: {{spool_path: {tmp_path / 'spool'}, flush_interval: 0.05}}\n"
            "providers: {ollama: {billing: per_token}}\n")  # priced, so it shows in the chart


def seeded(make_gateway: GatewayFactory, upstreams: Upstreams, tmp_path: Path,
           database_url: str) -> tuple[RunningGateway, dict[str, Any], list[dict[str, Any]]]:
    gateway = make_gateway(PROVIDERS, env={"DATABASE_URL": database_url,
                                           "GATEWAY_MASTER_KEY": MASTER},
                           yaml=spool_in(tmp_path))
    made = seed_traffic(gateway, upstreams, MASTER)
    rows = wait_for_rows(database_url, made["calls"])
    return gateway, made, rows


def admin_get(gateway: RunningGateway, path: str) -> httpx.Response:
    return httpx.get(gateway.url + path, headers={"authorization": f"Bearer {MASTER}"},
                     timeout=20)


def test_the_page_needs_the_master_key_and_shows_the_numbers(
    make_gateway: GatewayFactory, upstreams: Upstreams, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/u.db"
    gateway, made, rows = seeded(make_gateway, upstreams, tmp_path, url)
    with httpx.Client(base_url=gateway.url) as browser:
        first = browser.get("/ui")
        assert first.status_code == 401 and 'name="key"' in first.text
        wrong = browser.post("/ui/login", data={"key": "sk-guess"})
        assert wrong.status_code == 401 and COOKIE_NAME not in browser.cookies
        right = browser.post("/ui/login", data={"key": MASTER}, follow_redirects=False)
        assert right.status_code == 303
        assert MASTER not in right.headers["set-cookie"]  # an HMAC, never the key
        page = browser.get("/ui")
    assert page.status_code == 200
    total = sum(r["cost_usd"] for r in rows)
    assert total > 0 and f'id="spend-total">{money(total)}<' in page.text
    assert f'id="requests-total">{len(rows)}<' in page.text
    errors = sum(1 for r in rows if r["status"] == "error")
    assert errors == 1 and f'id="errors-total">{errors}<' in page.text
    # every key is listed, named and escaped, the never-used one included; no secret shows
    idle = made["keys"]["idle-script"]
    assert f"idle-script ({idle['id']})" in page.text and "never used" in page.text
    for key in made["keys"].values():
        assert key["key"] not in page.text
    # a bearer header works too (scripts, curl); names people type are escaped
    made_key = httpx.post(gateway.url + "/admin/keys", json={"name": "nb-<b>x</b>"},
                          headers={"authorization": f"Bearer {MASTER}"}).json()
    page = admin_get(gateway, "/ui")
    assert page.status_code == 200
    assert f"nb-&lt;b&gt;x&lt;/b&gt; ({made_key['id']})" in page.text and "<b>x" not in page.text


def test_a_database_that_is_down_is_a_page_that_says_so(make_gateway: GatewayFactory,
                                                        tmp_path: Path) -> None:
    gateway = make_gateway(["deepseek"], env={
        "DATABASE_URL": "postgresql://postgres@127.0.0.1:9/nothing_listens_here"},
        yaml=spool_in(tmp_path))
    response = httpx.get(gateway.url + "/ui", timeout=30)  # loopback, no master key
    assert response.status_code == 503
    assert "The usage database is unavailable." in response.text
    assert "Traceback" not in response.text and "9/nothing" not in response.text


def test_errors_in_the_query_string_show_on_the_page(make_gateway: GatewayFactory,
                                                     tmp_path: Path) -> None:
    gateway = make_gateway(["deepseek"], env={"DATABASE_URL": f"sqlite:///{tmp_path}/u.db"},
                           yaml=spool_in(tmp_path))
    for query, message in (("from=yesterday", "from: expected a date as YYYY-MM-DD"),
                           ("from=2026-03-05&to=2026-03-01", "is after to"),
                           ("range=fortnight", "range: expected one of"),
                           ("by=colour", "by: expected one of"),
                           ("before=nonsense", "before: not a position"),
                           ("format=csv&table=secrets", "table: no table named")):
        response = httpx.get(gateway.url + "/ui?" + query)  # loopback: no master key set
        assert response.status_code == 400, query
        assert response.headers["content-type"].startswith("text/html"), query
        assert 'id="error"' in response.text and message in response.text, query
        assert 'id="spend-total"' in response.text  # still the page, on the default period


def test_today_is_included_and_the_period_is_inclusive(
    make_gateway: GatewayFactory, upstreams: Upstreams, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/u.db"
    gateway, _, rows = seeded(make_gateway, upstreams, tmp_path, url)
    today = datetime.now(UTC).date()
    for query in ("range=today", f"from={today}&to={today}", "range=7d", "range=month"):
        page = admin_get(gateway, "/ui?" + query).text
        assert f'id="requests-total">{len(rows)}<' in page, query
        assert 'class="seg"' in page, query  # today's spend is on the chart
    yesterday = today - timedelta(days=1)
    page = admin_get(gateway, f"/ui?from={yesterday}&to={yesterday}").text
    assert 'id="requests-total">0<' in page


def test_every_table_exports_as_csv_with_the_same_filters(
    make_gateway: GatewayFactory, upstreams: Upstreams, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/u.db"
    gateway, made, rows = seeded(make_gateway, upstreams, tmp_path, url)
    tables = {}
    for name in ("providers", "teams", "keys", "models", "apis", "thinking", "series", "log"):
        response = admin_get(gateway, f"/ui?range=today&format=csv&table={name}")
        assert response.status_code == 200 and response.headers["content-type"].startswith(
            "text/csv"), name
        tables[name] = list(csv.DictReader(io.StringIO(response.text)))
    by_provider = {r["provider"]: int(r["requests"]) for r in tables["providers"]}
    served = [r for r in rows if r["status"] != "refused"]
    assert by_provider == {p: sum(1 for r in served if (r["provider"] or "(none)") == p)
                           for p in {r["provider"] or "(none)" for r in served}}
    assert abs(sum(float(r["cost_usd"]) for r in tables["series"])
               - sum(r["cost_usd"] for r in rows)) < 1e-9
    assert {r["key_id"] for r in tables["keys"]} >= {k["id"] for k in made["keys"].values()}
    # budgets: spend in the budget's own period (all seeded calls are today's) against it
    notebook = next(r for r in tables["keys"] if r["key_id"] == made["keys"]["notebook"]["id"])
    spent = sum(r["cost_usd"] for r in rows if r["key_id"] == made["keys"]["notebook"]["id"])
    assert (notebook["budget_usd"], notebook["budget_period"]) == ("0.01", "day")
    assert spent > 0 and float(notebook["budget_spent"]) == pytest.approx(spent)
    research = next(r for r in tables["teams"] if r["team"] == "research")
    assert float(research["budget_spent"]) == pytest.approx(
        sum(r["cost_usd"] for r in rows if r["team"] == "research"))
    assert float(research["budget_used"]) == pytest.approx(float(research["budget_spent"]) / 0.5)
    assert len(tables["log"]) == len(rows)
    one = admin_get(gateway, "/ui?format=csv&table=log&provider=openrouter").text
    assert {r["provider"] for r in csv.DictReader(io.StringIO(one))} == {"openrouter"}


# ---- in Chromium, on Postgres ---------------------------------------------------------------

needs_chromium = pytest.mark.skipif(
    not (shutil.which("chromium") and shutil.which("chromedriver")),
    reason="needs Debian's chromium and chromium-driver (.ci/run installs them)")


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'chrome'}", "--window-size=1280,1400"):
        options.add_argument(flag)
    options.binary_location = shutil.which("chromium") or ""
    driver = webdriver.Chrome(options=options,
                              service=Service(executable_path=shutil.which("chromedriver")))
    try:
        yield driver
    finally:
        driver.quit()


def click_and_load(driver: Any, element: Any) -> None:
    """Click a link or submit button and wait until the next page has replaced this one:
    reading right after the click could find the old page, or none yet (a loaded machine)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    page = driver.find_element(By.TAG_NAME, "html")
    element.click()
    wait = WebDriverWait(driver, 15)
    wait.until(expected_conditions.staleness_of(page))
    wait.until(lambda d: d.execute_script("return document.readyState") == "complete")


def sign_in(driver: Any, gateway: RunningGateway, key: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(gateway.url + "/ui")
    driver.find_element(By.NAME, "key").send_keys(key)
    click_and_load(driver, driver.find_element(By.CSS_SELECTOR, "form.login button"))
    driver.find_element(By.ID, "spend-total")


def table_rows(driver: Any, table_id: str) -> list[dict[str, str]]:
    from selenium.webdriver.common.by import By

    table = driver.find_element(By.ID, table_id)
    headers = [th.text for th in table.find_elements(By.CSS_SELECTOR, "thead th")]
    return [dict(zip(headers, [td.text for td in tr.find_elements(By.TAG_NAME, "td")],
                     strict=True))
            for tr in table.find_elements(By.CSS_SELECTOR, "tbody tr")]


def shot(driver: Any, name: str) -> Path:
    """The whole page, beyond the window (Chromium's DevTools capture)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    image = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}})
    path.write_bytes(base64.b64decode(image["data"]))
    assert path.stat().st_size > 10_000
    return path


@needs_chromium
def test_chromium_shows_the_seeded_usage(
    make_gateway: GatewayFactory, upstreams: Upstreams, tmp_path: Path, pg_url: str,
    chromium: Any
) -> None:
    from selenium.webdriver.common.by import By

    gateway, made, rows = seeded(make_gateway, upstreams, tmp_path, pg_url)
    driver = chromium
    sign_in(driver, gateway, MASTER)
    assert driver.find_element(By.ID, "spend-total").text == money(
        sum(r["cost_usd"] for r in rows))
    assert driver.find_element(By.ID, "requests-total").text == str(len(rows))
    assert driver.find_element(By.ID, "errors-total").text == "1"
    tokens = sum(r["prompt_tokens"] + r["completion_tokens"] for r in rows)
    assert driver.find_element(By.ID, "tokens-total").text == f"{tokens:,}"
    # the chart: one series per provider that was paid, in the legend and in the bars
    served = {r["provider"] for r in rows if r["provider"] and r["cost_usd"] > 0}
    legend = {g.get_attribute("data-series")
              for g in driver.find_elements(By.CSS_SELECTOR, "#spend-chart g.legend")}
    bars = {r.get_attribute("data-series")
            for r in driver.find_elements(By.CSS_SELECTOR, "#spend-chart rect.seg")}
    assert legend == bars == served and len(served) >= 2
    ticks = driver.find_elements(By.CSS_SELECTOR, "#spend-chart text.tick.y")
    assert len(ticks) >= 3 and ticks[0].text == "$0"
    # hovering a bar segment shows its value: the <title> of each segment
    deepseek = [r for r in rows if r["provider"] == "deepseek"]
    seg = driver.find_element(By.CSS_SELECTOR, '#spend-chart rect.seg[data-series="deepseek"]')
    hover = seg.find_element(By.TAG_NAME, "title").get_attribute("textContent")
    assert hover.endswith(f"deepseek: {money(sum(r['cost_usd'] for r in deepseek))} "
                          f"({len(deepseek)} requests)"), hover
    shot(driver, "ui-usage.png")
    # the provider table: requests, share and failovers per provider, from the raw rows
    providers = {r["Provider"]: r for r in table_rows(driver, "providers")}
    for name in ("ollama", "deepseek", "openrouter"):
        mine = [r for r in rows if r["provider"] == name]
        assert providers[name]["Requests"] == str(len(mine)), name
        failovers = sum(1 for r in mine if "," in r["attempts"])
        assert providers[name]["Failed over to"] == str(failovers), name
    assert int(providers["openrouter"]["Failed over to"]) >= 2
    assert providers["ollama"]["Latency p50"].endswith("ms")
    # by model: the switch redraws the chart with one series per model
    click_and_load(driver, driver.find_element(By.CSS_SELECTOR, 'a.switch[data-by="model"]'))
    models = {g.get_attribute("data-series")
              for g in driver.find_elements(By.CSS_SELECTOR, "#spend-chart g.legend")}
    assert models == {r["model"] for r in rows if r["cost_usd"] > 0}
    # the request log: filter to one request id, open its attempts
    box = driver.find_element(By.CSS_SELECTOR, '#log-filters input[name="request_id"]')
    box.send_keys(FAILOVER_REQUEST_ID)
    click_and_load(driver, driver.find_element(By.CSS_SELECTOR, "#log-filters button"))
    log = driver.find_elements(By.CSS_SELECTOR, "#log tbody tr")
    assert len(log) == 1
    details = log[0].find_element(By.TAG_NAME, "details")
    items = details.find_elements(By.TAG_NAME, "li")
    assert not items[0].is_displayed()  # closed until clicked
    details.find_element(By.TAG_NAME, "summary").click()
    assert [li.text for li in items] == ["ollama: HTTP 503 (failed)",
                                        "deepseek: HTTP 200 (served)"]
    shot(driver, "ui-usage-request-log.png")
    # quick range "today": today's calls, both ends the same day
    click_and_load(driver, driver.find_element(By.CSS_SELECTOR, 'a.quick[data-range="today"]'))
    today = datetime.now(UTC).date().isoformat()
    assert driver.find_element(By.NAME, "from").get_attribute("value") == today
    assert driver.find_element(By.NAME, "to").get_attribute("value") == today
    assert driver.find_element(By.ID, "requests-total").text == str(len(rows))
    hours = driver.find_elements(By.CSS_SELECTOR, "#spend-chart g.point")
    assert len(hours) == 24  # today is charted per hour
    del made


def wait_until(check: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline
        time.sleep(0.05)


@needs_chromium
def test_a_viewer_key_sees_only_its_team(
    make_gateway: GatewayFactory, upstreams: Upstreams, tmp_path: Path, pg_url: str,
    chromium: Any
) -> None:
    from selenium.webdriver.common.by import By

    gateway, made, rows = seeded(make_gateway, upstreams, tmp_path, pg_url)
    viewer = httpx.post(gateway.url + "/admin/keys", headers={"authorization": f"Bearer {MASTER}"},
                        json={"name": "research dashboard", "team": "research",
                              "role": "viewer"})
    assert viewer.status_code == 201, viewer.text
    secret = viewer.json()["key"]
    mine = [r for r in rows if r["team"] == "research"]
    assert 0 < len(mine) < len(rows)
    # a user key may not open the page; the viewer key may, by bearer or by signing in
    user = made["keys"]["notebook"]["key"]
    assert httpx.get(gateway.url + "/ui", headers={"authorization": f"Bearer {user}"}
                     ).status_code == 401
    driver = chromium
    sign_in(driver, gateway, secret)
    assert secret not in str(driver.get_cookies())
    assert driver.find_element(By.ID, "scope").text.startswith("Team research")
    assert driver.find_element(By.ID, "requests-total").text == str(len(mine))
    assert driver.find_element(By.ID, "spend-total").text == money(
        sum(r["cost_usd"] for r in mine))
    assert [r["Team"] for r in table_rows(driver, "teams")] == ["research"]
    assert {r["Team"] for r in table_rows(driver, "keys")} == {"research"}
    assert {r["Team"] for r in table_rows(driver, "log")} == {"research"}
    assert "Latency p50" in driver.find_element(By.ID, "providers").text  # its team's own
    shot(driver, "ui-usage-viewer.png")
    # asking for another team's calls still shows only its own
    driver.get(gateway.url + "/ui?team=support&format=")
    assert {r["Team"] for r in table_rows(driver, "log")} == {"research"}
    exported = httpx.get(gateway.url + "/ui?format=csv&table=log&team=support",
                         headers={"authorization": f"Bearer {secret}"})
    assert exported.status_code == 200
    assert {r["team"] for r in csv.DictReader(io.StringIO(exported.text))} == {"research"}
    # revoking the key ends the session
    httpx.delete(gateway.url + f"/admin/keys/{viewer.json()['id']}",
                 headers={"authorization": f"Bearer {MASTER}"}).raise_for_status()
    driver.get(gateway.url + "/ui")
    assert driver.find_elements(By.NAME, "key") and not driver.find_elements(
        By.ID, "spend-total")
