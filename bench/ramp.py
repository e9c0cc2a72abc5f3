"""A burst of new streams: `python bench/ramp.py --port P [--streams 1000] [--seconds 4]`.

Opens `--streams` connections to a gateway (or anything speaking the Chat API) spread evenly
over `--seconds`, one streamed request each, and prints, per half-second slice of the starts,
how long the requests waited for their answer's first bytes and first content chunk. Start the
paced upstream and a gateway at it first (gw.yaml holding `metering: {enabled: false}`), each
on its own core, as bench/paced.py does:

    taskset -c 1 .venv/bin/python bench/paced.py upstream --port 18100 \\
        --upstream-model deepseek-flash &
    DEEPSEEK_API_KEY=sk-bench DEEPSEEK_BASE_URL=http://127.0.0.1:18100 taskset -c 0 \\
        .venv/bin/gateway serve --port 18090 --config gw.yaml &
    taskset -c 1 .venv/bin/python bench/ramp.py --port 18090

bench/paced.py measures streams once they are all running; this measures the ramp before.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from paced import CONTENT_MARK, REQUEST, install_uvloop, raise_fd_limit


class FirstChunk(asyncio.Protocol):
    """One request; notes when its answer's first bytes and first content chunk arrive."""

    def __init__(self, request: bytes, started: float, rows: list[tuple[float, float, float]]):
        self.request = request
        self.started = started
        self.rows = rows
        self.sent = 0.0
        self.head: float | None = None
        self.done = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.sent = time.monotonic()
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        if self.head is None:
            self.head = now
        if not self.done and CONTENT_MARK in data:
            self.done = True
            self.rows.append((self.started, self.head - self.sent, now - self.sent))


async def ramp(port: int, streams: int, seconds: float) -> list[tuple[float, float, float]]:
    loop = asyncio.get_running_loop()
    request = (f"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
               f"content-type: application/json\r\ncontent-length: {len(REQUEST)}\r\n\r\n"
               ).encode() + REQUEST
    rows: list[tuple[float, float, float]] = []
    begin = time.monotonic()

    async def one(i: int) -> None:
        await asyncio.sleep(seconds * i / streams)
        started = time.monotonic() - begin
        await loop.create_connection(lambda: FirstChunk(request, started, rows),
                                     "127.0.0.1", port)

    await asyncio.gather(*(one(i) for i in range(streams)))
    await asyncio.sleep(5.0)  # the last ones' first chunks
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    raise_fd_limit()
    install_uvloop()
    rows = asyncio.run(ramp(args.port, args.streams, args.seconds))
    print(f"{len(rows)} of {args.streams} streams had a content chunk")
    print("| started at | streams | first bytes p50 / max ms | first content p50 / max ms |")
    print("|---|---:|---:|---:|")
    half = 0.0
    while half <= args.seconds:
        part = [r for r in rows if half <= r[0] < half + 0.5]
        if part:
            heads, firsts = [r[1] * 1000 for r in part], [r[2] * 1000 for r in part]
            print(f"| {half:.1f}-{half + 0.5:.1f} s | {len(part)} | "
                  f"{statistics.median(heads):.0f} / {max(heads):.0f} | "
                  f"{statistics.median(firsts):.0f} / {max(firsts):.0f} |")
        half += 0.5


if __name__ == "__main__":
    main()
