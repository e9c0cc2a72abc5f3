"""bench/paced.py with floor variants that differ only in the upstream client.

    .venv/bin/python bench/transport_paced.py --targets floor-aiohttp,floor-pyreqwest,floor-proto \
        --streams 500 --seconds 15 --output /tmp/paced-transport.md

Adds targets floor-<client> (bench/transport_floor.py's create_<client>: aiohttp, pyreqwest,
proto, each with the gateway's timeouts) to paced.py's raw forwarders; CPU per chunk is the
number to compare.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import paced
import run

for client in ("aiohttp", "pyreqwest", "proto"):
    run.RAW_APPS[f"floor-{client}"] = f"bench.transport_floor:create_{client}"

if __name__ == "__main__":
    sys.exit(paced.orchestrate(sys.argv[1:]))
