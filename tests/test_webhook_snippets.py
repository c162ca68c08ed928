"""The verification snippets in docs/webhooks.md, run against real wagate signatures."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from gateway.webhooks.signing import signature_header

DOC = Path(__file__).resolve().parents[1] / "docs" / "webhooks.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.S)


def signed(secrets: list[str]) -> tuple[dict[str, str], bytes]:
    body = json.dumps({"id": "evt_1", "type": "message.read", "timestamp": "now",
                       "data": {"message_id": "3EB0"}}).encode()
    stamp = int(time.time())
    return ({"webhook-id": "evt_1", "webhook-timestamp": str(stamp),
             "webhook-signature": signature_header(secrets, "evt_1", stamp, body)}, body)


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


@pytest.mark.parametrize("index", [0, 1])
def test_python_snippets(index: int) -> None:
    namespace: dict[str, Any] = {}
    exec(blocks("python")[index], namespace)  # our own documentation
    verify = namespace["verify"]
    secret, old = new_secret(), new_secret()
    headers, body = signed([secret, old])  # during a rotation both sign
    assert verify(secret, headers, body)["type"] == "message.read"
    assert verify(old, headers, body)["type"] == "message.read"
    with pytest.raises(Exception):  # noqa: B017, PT011 - each snippet raises its own type
        verify(new_secret(), headers, body)
    with pytest.raises(Exception):  # noqa: B017, PT011
        verify(secret, headers, body + b" ")


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_node_snippet(tmp_path: Path) -> None:
    script = tmp_path / "verify.js"
    script.write_text(blocks("javascript")[0] + """
const [secret, headers, body] = JSON.parse(require("fs").readFileSync(0, "utf8"));
try { console.log(verifyWebhook(secret, headers, body).type); }
catch (e) { console.log("refused: " + e.message); }
""")
    secret = new_secret()
    headers, body = signed([secret])

    def run(key: str, raw: str) -> str:
        payload = json.dumps([key, headers, raw])
        return subprocess.run(["node", str(script)], input=payload, capture_output=True,
                              text=True, timeout=30, check=True).stdout.strip()

    assert run(secret, body.decode()) == "message.read"
    assert run(new_secret(), body.decode()) == "refused: no valid signature"
    assert run(secret, body.decode() + " ") == "refused: no valid signature"
