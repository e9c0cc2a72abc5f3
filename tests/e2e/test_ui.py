"""The built-in usage page: access control over HTTP, and what a person sees in Chromium."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import httpx
import pytest

from gateway.api.ui import money
from tests.e2e.conftest import GatewayFactory, RunningGateway
from tests.upstream.common import Faults

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def spool_in(tmp_path: Path) -> str:
    """Keep the usage writer's spool out of the working tree."""
    return f"metering: {{spool_path: {tmp_path / 'spool'}}}\n"


def seed(gateway: RunningGateway, master_key: str | None = None) -> list[dict]:
    """Send a mix of requests, then wait until every one is a usage row; return the daily
    report the page must agree with."""
    client = gateway.openai(api_key=master_key or "unused")
    for i in range(4):
        client.chat.completions.create(model="deepseek-chat",
                                       messages=[{"role": "user", "content": f"hello {i}"}])
    client.chat.completions.create(model="deepseek-v4-pro",
                                   messages=[{"role": "user", "content": "a longer question"}])
    headers = {"authorization": f"Bearer {master_key}"} if master_key else {}
    deadline = time.monotonic() + 10
    while True:
        rows = httpx.get(gateway.url + "/admin/usage?group_by=day", headers=headers).json()
        if sum(r["requests"] for r in rows["data"]) == 5:
            return list(rows["data"])
        assert time.monotonic() < deadline, rows
        time.sleep(0.1)


def test_the_page_needs_the_master_key_and_shows_the_numbers(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    master = "sk-master-ui-test"
    gateway = make_gateway(["deepseek"], env={"DATABASE_URL": f"sqlite:///{tmp_path}/u.db",
                                              "GATEWAY_MASTER_KEY": master},
                           yaml=spool_in(tmp_path))
    days = seed(gateway, master)
    with httpx.Client(base_url=gateway.url) as browser:
        first = browser.get("/ui")
        assert first.status_code == 401 and 'name="key"' in first.text
        wrong = browser.post("/ui/login", data={"key": "sk-guess"})
        assert wrong.status_code == 401 and COOKIE_NAME not in browser.cookies
        right = browser.post("/ui/login", data={"key": master}, follow_redirects=False)
        assert right.status_code == 303
        assert master not in right.headers["set-cookie"]  # an HMAC, never the key
        page = browser.get("/ui")
    assert page.status_code == 200
    total = sum(d["cost_usd"] for d in days)
    assert total > 0 and money(total) in page.text
    assert 'id="by-model"' in page.text and "deepseek-v4-pro" in page.text
    # a bearer header works too (scripts, curl)
    direct = httpx.get(gateway.url + "/ui", headers={"authorization": f"Bearer {master}"})
    assert direct.status_code == 200


COOKIE_NAME = "switchyard_ui"


def test_an_error_in_the_period_is_a_clean_400(make_gateway: GatewayFactory,
                                               tmp_path: Path) -> None:
    gateway = make_gateway(["deepseek"], env={"DATABASE_URL": f"sqlite:///{tmp_path}/u.db"},
                           yaml=spool_in(tmp_path))
    response = httpx.get(gateway.url + "/ui?from=yesterday")
    assert response.status_code == 400


@pytest.mark.skipif(not (shutil.which("chromium") and shutil.which("chromedriver")),
                    reason="needs Debian's chromium and chromium-driver (.ci/run installs them)")
def test_chromium_renders_the_seeded_usage(
    make_gateway: GatewayFactory, upstreams: object, tmp_path: Path
) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    gateway = make_gateway(["deepseek", "ollama"],
                           env={"DATABASE_URL": f"sqlite:///{tmp_path}/u.db"},
                           yaml=spool_in(tmp_path))
    upstreams.ollama.faults = Faults(status=503)  # type: ignore[attr-defined]
    days = seed(gateway)
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'chrome'}", "--window-size=1200,1100"):
        options.add_argument(flag)
    options.binary_location = shutil.which("chromium") or ""
    driver = webdriver.Chrome(options=options,
                              service=Service(executable_path=shutil.which("chromedriver")))
    try:
        driver.get(gateway.url + "/ui")
        spend = driver.find_element(By.ID, "spend-total").text
        requests = driver.find_element(By.ID, "requests-total").text
        bars = driver.find_elements(By.CSS_SELECTOR, "#day-chart rect")
        models = driver.find_element(By.ID, "by-model").text
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "ui-usage.png"))
    finally:
        driver.quit()
    assert spend == money(sum(d["cost_usd"] for d in days))
    assert requests == "5"
    assert len(bars) == len(days) and spend != "$0.000000"
    assert "deepseek-v4-flash" in models and "deepseek-v4-pro" in models
    assert (ARTIFACTS / "ui-usage.png").stat().st_size > 10_000


def test_keys_are_shown_by_name(make_gateway: GatewayFactory, tmp_path: Path) -> None:
    master = "sk-master-ui-names"
    gateway = make_gateway(["deepseek"], env={"DATABASE_URL": f"sqlite:///{tmp_path}/u.db",
                                              "GATEWAY_MASTER_KEY": master},
                           yaml=spool_in(tmp_path))
    admin = {"authorization": f"Bearer {master}"}
    made = httpx.post(gateway.url + "/admin/keys", headers=admin,
                      json={"name": "notebook-<b>", "team": None}).json()
    gateway.openai(api_key=made["key"]).chat.completions.create(
        model="deepseek-chat", messages=[{"role": "user", "content": "hi"}])
    deadline = time.monotonic() + 10
    while True:
        page = httpx.get(gateway.url + "/ui", headers=admin).text
        if made["id"] in page:
            break
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert f"notebook-&lt;b&gt; ({made['id']})" in page  # named, and escaped
    assert made["key"] not in page
