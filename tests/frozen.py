"""A server process a fault test can freeze: SIGSTOP keeps its sockets open and silent (a hung
server, not a refusing one), SIGCONT lets it go on."""

from __future__ import annotations

import os
import signal
import subprocess


class Freezable:
    proc: subprocess.Popen[bytes] | None = None

    def freeze(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)
