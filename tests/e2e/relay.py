"""A TCP relay in its own process, in front of a real server (Postgres, Redis), for tests
that need that server to hang rather than refuse: SIGSTOP the relay and every connection
through it stays open with nothing answered, new connections are accepted by the kernel and
then hear nothing, exactly as a frozen server looks to its clients; SIGCONT and the bytes
buffered meanwhile flow on.

Run: `python -m tests.e2e.relay LISTEN_PORT TARGET_HOST TARGET_PORT`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time

from tests.frozen import Freezable


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            writer.close()


async def _serve(listen_port: int, host: str, port: int) -> None:
    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(host, port)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(_pipe(client_r, server_w), _pipe(server_r, client_w))

    server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
    async with server:
        await server.serve_forever()


class Relay(Freezable):
    """The relay process, seen from a test."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port: int = sock.getsockname()[1]
        self._target = (target_host, target_port)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Relay:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.relay", str(self.port), self._target[0],
             str(self._target[1])], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("the relay did not start")

    def stop(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None


if __name__ == "__main__":
    asyncio.run(_serve(int(sys.argv[1]), sys.argv[2], int(sys.argv[3])))
