"""Regenerate docs/ui-usage.png: a gateway on simulated upstreams, two teams with budgets and
limits, four keys (one never used), two weeks of history stored through the usage store's own
write path (raw rows and their rollups), today's live traffic with failovers and an error,
then the usage page in headless Chromium.

    .venv/bin/python docs/make_screenshot.py      (needs Debian's chromium and chromedriver)
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from openai import APIStatusError, OpenAI
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.app import create_app  # noqa: E402
from gateway.config import load_config  # noqa: E402
from gateway.db.engine import async_url  # noqa: E402
from gateway.db.store import UsageStore  # noqa: E402
from gateway.metering.cost import cost_usd  # noqa: E402
from gateway.metering.prices import PriceBook  # noqa: E402
from gateway.metering.rows import build_row  # noqa: E402
from gateway.usage import Usage, UsageEvent  # noqa: E402
from tests.server import GatewayServer  # noqa: E402
from tests.upstream.common import Faults  # noqa: E402
from tests.upstream.deepseek import SimulatedDeepSeek  # noqa: E402
from tests.upstream.ollama import SimulatedOllama  # noqa: E402
from tests.upstream.openrouter import SimulatedOpenRouter  # noqa: E402

MASTER = "sk-master-screenshot"
PRICES = PriceBook.load()
PROVIDERS = ("deepseek", "openrouter", "ollama")


def history(keys: dict[str, dict[str, str]], days: int = 13) -> list[UsageEvent]:
    """Calls over the `days` before today: most on DeepSeek, some failing over."""
    rng = random.Random(14)
    now = time.time()
    midnight = now - now % 86400
    events = []
    plan = (("notebook", "deepseek-v4-pro", "high"), ("eval-runner", "deepseek-v4-flash", "off"),
            ("helpdesk-bot", "deepseek-v4-flash", "off"))
    for day in range(days, 0, -1):
        for i in range(rng.randrange(25, 60)):
            name, model, thinking = rng.choice(plan)
            failed = rng.random() < 0.15
            served = "openrouter" if failed else rng.choice(("deepseek",) * 5 + ("ollama",))
            attempts = [("deepseek", "503")] if failed else []
            attempts.append((served, "200"))
            hit = rng.randrange(0, 12000)
            streamed = rng.random() < 0.5
            usage = Usage(prompt_tokens=hit + 2000, cache_hit_tokens=hit,
                          cache_miss_tokens=2000, completion_tokens=rng.randrange(200, 3000),
                          reasoning_tokens=rng.randrange(0, 800) if thinking != "off" else 0)
            started = midnight - day * 86400 + rng.uniform(7, 20) * 3600
            price = PRICES.price(served, model, datetime.fromtimestamp(started, UTC))
            if served == "openrouter" and price is not None:  # OpenRouter reports its cost
                usage.provider_cost_usd = round(cost_usd(usage, price) * 1.05, 8)
            events.append(UsageEvent(
                request_id=f"hist-{day}-{i}", requested_model=model, model=model,
                thinking=thinking, stream=streamed, status="ok", provider=served,
                attempts=attempts, api=rng.choice(("openai.chat",) * 3 + ("anthropic.messages",)),
                usage=usage, key_id=keys[name]["id"], team=keys[name]["team"], started_at=started,
                latency_s=rng.uniform(0.8, 9.0),
                ttft_s=rng.uniform(0.2, 1.5) if streamed else None))
    return events


async def store_history(database: Path, events: list[UsageEvent]) -> None:
    store = UsageStore(async_url(None, database))
    try:
        await store.insert([build_row(event, PRICES) for event in events], PRICES)
    finally:
        await store.close()


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="switchyard-shot-"))
    sims = {"deepseek": SimulatedDeepSeek(), "openrouter": SimulatedOpenRouter(),
            "ollama": SimulatedOllama()}
    for sim in sims.values():
        sim.start()
    config_file = tmp / "gateway.yaml"
    config_file.write_text(f"metering: {{spool_path: {tmp / 'spool'}, flush_interval: 0.05}}\n"
                           "providers: {ollama: {billing: per_token}}\n")
    env = {"GATEWAY_MASTER_KEY": MASTER, "DATABASE_URL": f"sqlite:///{tmp / 'usage.db'}"}
    for name, sim in sims.items():
        env[f"{name.upper()}_API_KEY"] = sim.key
        env[f"{name.upper()}_BASE_URL"] = sim.base_url
    server = GatewayServer(create_app(load_config(config_file, env=env))).start()
    admin = httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {MASTER}"})
    admin.post("/admin/teams", json={"name": "research", "budget_usd": 5, "rpm": 600,
                                     "budget_period": "month"}).raise_for_status()
    admin.post("/admin/teams", json={"name": "support", "budget_usd": 0.05,
                                     "budget_period": "day"}).raise_for_status()
    keys = {}
    for name, team, extra in (("notebook", "research", {"budget_usd": 2}),
                              ("eval-runner", "research", {"tpm": 200000}),
                              ("helpdesk-bot", "support", {"rpm": 120}),
                              ("idle-script", "support", {})):
        made = admin.post("/admin/keys", json={"name": name, "team": team, **extra})
        made.raise_for_status()
        keys[name] = made.json()
    asyncio.run(store_history(tmp / "usage.db", history(keys)))
    prompt = "summarise the quarterly report for the board in five short bullet points please"
    for name, model, count in (("notebook", "deepseek-reasoner", 5),
                               ("eval-runner", "deepseek-v4-pro", 4),
                               ("helpdesk-bot", "deepseek-chat", 8)):
        client = OpenAI(base_url=server.url + "/v1", api_key=keys[name]["key"], max_retries=0)
        for i in range(count):
            if name == "helpdesk-bot" and i == 5:
                sims["deepseek"].faults = Faults(status=503)  # fail over to OpenRouter
            client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": f"{prompt} ({i})" * 3}])
    for sim in sims.values():
        sim.faults = Faults(status=503)
    with contextlib.suppress(APIStatusError):  # everything down: one error in the log
        OpenAI(base_url=server.url + "/v1", api_key=keys["notebook"]["key"],
               max_retries=0).chat.completions.create(
            model="deepseek-chat", messages=[{"role": "user", "content": prompt}])
    time.sleep(1.0)  # let the usage writer flush
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", f"--user-data-dir={tmp / 'chrome'}",
                 "--window-size=1180,1500", "--hide-scrollbars"):
        options.add_argument(flag)
    options.binary_location = shutil.which("chromium") or ""
    driver = webdriver.Chrome(options=options,
                              service=Service(executable_path=shutil.which("chromedriver")))
    try:
        driver.get(server.url + "/ui")  # the login form
        driver.find_element("name", "key").send_keys(MASTER)
        driver.find_element("css selector", "form.login button").click()
        driver.get(server.url + "/ui?range=7d&by=provider")
        driver.find_element("id", "spend-total")
        driver.save_screenshot(str(ROOT / "docs" / "ui-usage.png"))
    finally:
        driver.quit()
        server.stop()
        for sim in sims.values():
            sim.stop()
    print("wrote", ROOT / "docs" / "ui-usage.png")


if __name__ == "__main__":
    main()
