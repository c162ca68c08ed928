"""The README walk-through, run as written (with its base URL pointed at a test daemon)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.daemon import Daemon

ROOT = Path(__file__).resolve().parents[1]


def walkthrough() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Walk-through", 1)[1].split("Stop the daemon", 1)[0]
    return "\n".join(re.findall(r"```sh\n(.*?)```", section, flags=re.S))


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_readme_walkthrough_works_as_written(tmp_path: Path) -> None:
    # the daemon as `make run` starts it: default timings, the simulated driver
    env = {k: v for k, v in os.environ.items() if not k.startswith("WAGATE_")}
    daemon = Daemon(tmp_path / "data", tmp_path / "daemon.log")
    daemon.env = {**env, "WAGATE_DATA_DIR": str(tmp_path / "data"),
                  "WAGATE_PORT": str(daemon.port), "WAGATE_DRIVER": "simulated"}
    daemon.start()
    try:
        script = walkthrough().replace("http://127.0.0.1:8080", daemon.url)
        script = script.replace(".venv/bin/wagate", f"{sys.executable} -m gateway")
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path,
                                env=daemon.env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr + result.stdout
        out = result.stdout
        assert out.count('"message":"Message sent"') == 3, out
        assert '"status":"connected"' in out
        assert "wrote qr.png" in out
        assert '"message":"Hello from a GET"' in out
    finally:
        daemon.kill()
