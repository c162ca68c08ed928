"""Run `wagate serve` as a real process, for tests that need signals and restarts."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import httpx

from tests.conftest import FAST


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Daemon:
    def __init__(self, data_dir: Path, log: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.env = {**os.environ, **FAST, "WAGATE_DATA_DIR": str(data_dir),
                    "WAGATE_PORT": str(self.port), **env}
        self.proc: subprocess.Popen[bytes] | None = None
        self._out: IO[Any] | None = None

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-m", "gateway", *args], env=self.env,
                                capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"wagate {' '.join(args)}: {result.stderr}")
        return result

    def start(self) -> None:
        self._out = self.log.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "gateway", "serve"], env=self.env,
                                     stdout=self._out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError("daemon did not come up")

    def terminate(self, sig: int = signal.SIGTERM, timeout: float = 15) -> tuple[int, float]:
        """Send `sig`; return the exit code and how long the process took to exit."""
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        if self._out is not None:
            self._out.close()
        return code, time.monotonic() - started

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self._out is not None:
            self._out.close()
