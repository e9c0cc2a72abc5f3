"""The gateway's own CPU per request and per stream, in one process, without a server.

`python bench/pipeline.py [--requests 4000] [--concurrency 32] [--rounds 5]` builds the app
(`create_app`, metering off: the writer is measured by bench/writer.py) with DeepSeek at a
canned upstream served in the same uvloop loop (no HTTP library: its cost is small and the
same on both sides of a comparison), then calls the ASGI app directly, `--concurrency` calls at
a time, with a chat request, non-streamed and streamed (bench/run.py's canned answer and SSE
stream), and prints CPU microseconds (`time.process_time`, so a shared core's preemption is
left out) per call: everything the gateway does for a call (auth, parse, routing, the aiohttp
call, translation, rendering, metrics, the access line written to a file) except uvicorn's
HTTP parsing and socket writes. `--before DIR` runs the same in another checkout's gateway/
(in its own child processes, interleaved round by round with this one) and prints
after / before per mode.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # bench/run.py: the canned answer and stream
from hotpath import CannedServer  # bench/hotpath.py: a keep-alive server with no library

ANSWER = json.dumps(run.canned_completion(), separators=(",", ":")).encode()
STREAM = run.canned_sse().encode()
REQUEST = (b'{"model":"deepseek-v4-flash","messages":[{"role":"user","content":"Hi"}]'
           b',"max_tokens":64')


def _response(body: bytes, content_type: bytes) -> bytes:
    return (b"HTTP/1.1 200 OK\r\nContent-Type: " + content_type + b"\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)


class Canned(CannedServer):
    """Any request with `"stream": true` in its body gets the stream, others the answer."""

    def answer(self, body: bytes) -> bytes:
        if b'"stream":true' in body:
            return _response(STREAM, b"text/event-stream")
        return _response(ANSWER, b"application/json")


async def _call(app: Any, stream: bool) -> int:
    body = REQUEST + (b',"stream":true}' if stream else b"}")
    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions",
             "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode()),
                         (b"authorization", b"Bearer sk-bench")],
             "client": ("127.0.0.1", 40000), "query_string": b"", "http_version": "1.1",
             "scheme": "http", "root_path": "", "state": {}}
    sent: list[bytes] = []
    given = False
    hang = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        await hang.wait()  # the stream's disconnect watcher: never fires
        return {"type": "http.disconnect"}

    status = 0

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        else:
            sent.append(message.get("body", b""))

    await app(scope, receive, send)
    if stream and not b"".join(sent).endswith(b"data: [DONE]\n\n"):
        raise RuntimeError(f"a stream did not end with [DONE]: {b''.join(sent)[-200:]!r}")
    return status


async def _measure(requests: int, concurrency: int, log_dir: Path,
                   log_file: TextIO) -> dict[str, float]:
    from gateway import logs
    from gateway.app import create_app
    from gateway.config import load_config

    logs.configure("info", "text", access_log=True)
    for handler in logging.getLogger("gateway.access").handlers:
        handler.setStream(log_file)  # type: ignore[attr-defined]
    for handler in logging.getLogger().handlers:
        handler.setStream(log_file)  # type: ignore[attr-defined]
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Canned, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config_file = log_dir / "gateway.yaml"
    config_file.write_text("metering: {enabled: false}\n")
    config = load_config(config_file, env={"DEEPSEEK_API_KEY": "sk-bench",
                                           "DEEPSEEK_BASE_URL": f"http://127.0.0.1:{port}"})
    app = create_app(config)
    out: dict[str, float] = {}
    async with app.api.router.lifespan_context(app.api):
        for stream in (False, True):
            async def worker(count: int, stream: bool = stream) -> None:
                for _ in range(count):
                    if await _call(app, stream) != 200:
                        raise RuntimeError("a call failed")

            await asyncio.gather(*(worker(20) for _ in range(concurrency)))  # warm up
            per = requests // concurrency
            started = time.process_time()
            await asyncio.gather(*(worker(per) for _ in range(concurrency)))
            out["stream" if stream else "non-stream"] = (
                (time.process_time() - started) / (per * concurrency) * 1e6)
    server.close()
    return out


def _child(opts: argparse.Namespace) -> None:
    import uvloop

    with tempfile.TemporaryDirectory() as tmp, open(Path(tmp) / "access.log", "w") as log_file:
        result = uvloop.run(_measure(opts.requests, opts.concurrency, Path(tmp), log_file))
    print(json.dumps(result))


def _run_side(checkout: Path, opts: argparse.Namespace) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    out = subprocess.run(
        [sys.executable, __file__, "--child", "--requests", str(opts.requests),
         "--concurrency", str(opts.concurrency)],
        env=env, check=True, capture_output=True, text=True, cwd=tempfile.gettempdir())
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=4000)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--before", type=Path, default=None, help="another checkout to compare")
    p.add_argument("--after", type=Path, default=Path(__file__).resolve().parent.parent)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    opts = p.parse_args()
    if opts.child:
        _child(opts)
        return 0
    sides = {"after": opts.after} | ({"before": opts.before} if opts.before else {})
    results: dict[str, dict[str, list[float]]] = {side: {} for side in sides}
    for i in range(opts.rounds):
        order = list(sides.items()) if i % 2 == 0 else list(reversed(sides.items()))
        for side, checkout in order:
            for mode, value in _run_side(checkout, opts).items():
                results[side].setdefault(mode, []).append(value)
                print(f"round {i + 1} {side:6} {mode:10} {value:7.1f} us per call", flush=True)
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")
    print("| mode | " + " | ".join(f"{side} us per call (median)" for side in sides)
          + (" | after / before (median of per-round ratios) |" if opts.before else " |"))
    print("|---|" + "---:|" * (len(sides) + (1 if opts.before else 0)))
    for mode in results["after"]:
        cells = [f"{statistics.median(results[side][mode]):.1f}" for side in sides]
        if opts.before:
            ratios = [a / b for a, b in zip(results["after"][mode], results["before"][mode],
                                            strict=True)]
            cells.append(f"{statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f})")
        print(f"| {mode} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
