"""Run one simulated upstream in the foreground: python -m tests.upstream deepseek --port 9001."""

from __future__ import annotations

import argparse
import contextlib
import threading

from .common import SimulatedProvider
from .deepseek import SimulatedDeepSeek
from .ollama import SimulatedOllama
from .openrouter import SimulatedOpenRouter

PROVIDERS: dict[str, type[SimulatedProvider]] = {
    "deepseek": SimulatedDeepSeek,
    "openrouter": SimulatedOpenRouter,
    "ollama": SimulatedOllama,
}


def build(name: str, port: int, key: str | None, cloud_suffix: bool) -> SimulatedProvider:
    if name == "ollama":
        return SimulatedOllama(port=port, accept_cloud_suffix=cloud_suffix,
                               **({"key": key} if key else {}))
    if name == "openrouter":
        return SimulatedOpenRouter(port=port, **({"key": key} if key else {}))
    return SimulatedDeepSeek(port=port, **({"key": key} if key else {}))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.upstream", description=__doc__)
    parser.add_argument("provider", choices=sorted(PROVIDERS))
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--key", default=None, help="API key the simulator accepts")
    parser.add_argument("--cloud-suffix", action="store_true",
                        help="ollama: also accept model names ending in :cloud")
    args = parser.parse_args(argv)
    sim = build(args.provider, args.port, args.key, args.cloud_suffix)
    with sim:
        print(f"{args.provider} simulator: base_url={sim.base_url} "
              f"control={sim.server_url}/_sim/ key={sim.key}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
