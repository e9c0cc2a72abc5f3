"""Regenerate docs/ui-usage.png: a gateway on simulated upstreams, a team and two keys, some
traffic, then the usage page in headless Chromium.

    .venv/bin/python docs/make_screenshot.py      (needs Debian's chromium and chromedriver)
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx
from openai import OpenAI
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.app import create_app  # noqa: E402
from gateway.config import load_config  # noqa: E402
from tests.server import GatewayServer  # noqa: E402
from tests.upstream.deepseek import SimulatedDeepSeek  # noqa: E402
from tests.upstream.openrouter import SimulatedOpenRouter  # noqa: E402

MASTER = "sk-master-screenshot"


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="switchyard-shot-"))
    deepseek, openrouter = SimulatedDeepSeek().__enter__(), SimulatedOpenRouter().__enter__()
    config_file = tmp / "gateway.yaml"
    config_file.write_text(f"metering: {{spool_path: {tmp / 'spool'}, flush_interval: 0.05}}\n")
    env = {"DEEPSEEK_API_KEY": deepseek.key, "DEEPSEEK_BASE_URL": deepseek.base_url,
           "OPENROUTER_API_KEY": openrouter.key, "OPENROUTER_BASE_URL": openrouter.base_url,
           "GATEWAY_MASTER_KEY": MASTER, "DATABASE_URL": f"sqlite:///{tmp / 'usage.db'}"}
    server = GatewayServer(create_app(load_config(config_file, env=env))).start()
    admin = httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {MASTER}"})
    for team in ("research", "support"):
        admin.post("/admin/teams", json={"name": team}).raise_for_status()
    keys = {}
    for name, team in (("notebook", "research"), ("eval-runner", "research"),
                       ("helpdesk-bot", "support")):
        made = admin.post("/admin/keys", json={"name": name, "team": team})
        made.raise_for_status()
        keys[name] = made.json()["key"]
    prompt = "summarise the quarterly report for the board in five short bullet points please"
    plan = [("notebook", "deepseek-reasoner", 6), ("eval-runner", "deepseek-v4-pro", 4),
            ("helpdesk-bot", "deepseek-chat", 12)]
    for name, model, count in plan:
        client = OpenAI(base_url=server.url + "/v1", api_key=keys[name], max_retries=0)
        for i in range(count):
            client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": f"{prompt} ({i})" * 3}])
    time.sleep(1.0)  # let the usage writer flush
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", f"--user-data-dir={tmp / 'chrome'}",
                 "--window-size=1100,1150"):
        options.add_argument(flag)
    options.binary_location = shutil.which("chromium") or ""
    driver = webdriver.Chrome(options=options,
                              service=Service(executable_path=shutil.which("chromedriver")))
    try:
        driver.get(server.url + "/ui")  # the login form
        driver.find_element("name", "key").send_keys(MASTER)
        driver.find_element("css selector", "form.login button").click()
        driver.find_element("id", "spend-total")
        driver.save_screenshot(str(ROOT / "docs" / "ui-usage.png"))
    finally:
        driver.quit()
        server.stop()
        deepseek.stop()
        openrouter.stop()
    print("wrote", ROOT / "docs" / "ui-usage.png")


if __name__ == "__main__":
    main()
