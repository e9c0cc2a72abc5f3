"""An OTLP/HTTP trace receiver for benchmarks: accepts `POST /v1/traces`, counts requests and
bytes, answers 200 with an empty ExportTraceServiceResponse. Lets a benchmark run the gateway
with tracing on (`OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:PORT`) without a collector.

    python bench/otlp_sink.py 4318     # prints its counts on Ctrl-C or SIGTERM
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Counts:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = 0
        self.bytes = 0


def handler_for(counts: Counts) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            size = int(self.headers.get("content-length") or 0)
            self.rfile.read(size)
            with counts.lock:
                counts.requests += 1
                counts.bytes += size
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def main(argv: list[str]) -> int:
    port = int(argv[1]) if len(argv) > 1 else 4318
    counts = Counts()
    server = ThreadingHTTPServer(("127.0.0.1", port), handler_for(counts))
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"OTLP sink on http://127.0.0.1:{port}/v1/traces", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    print(f"received {counts.requests} exports, {counts.bytes} bytes", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
