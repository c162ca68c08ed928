"""The README walk-through, end to end: register, user, device, scan, send three ways."""

from __future__ import annotations

from tests.conftest import Gateway


async def test_register_link_and_send_three_ways(gateway: Gateway) -> None:
    partner = await gateway.register()
    assert partner.key.startswith("pk_")
    device = await partner.create_device()
    assert device["session_id"].startswith("wa_")
    assert device["device_token"].startswith("dt_")
    assert device["send_url"] == f"{gateway.url}/wa/{device['device_token']}/send"
    assert device["qr_url"] == f"{gateway.url}/partner/devices/{device['session_id']}/qr"

    await partner.link(device["session_id"])
    r = await partner.get(f"/partner/devices/{device['session_id']}/qr")
    assert r.json() == {"type": "connected", "phone": "919876543210"}

    send_url = device["send_url"]
    sent = [
        await gateway.client.post(send_url, json={"to": "919876543210", "message": "json"}),
        await gateway.client.post(send_url, data={"to": "+91 98765 43210", "message": "form"}),
        await gateway.client.get(send_url, params={"to": "whatsapp:+919876543210",
                                                   "message": "query"}),
    ]
    for r in sent:
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["type"] == "success"
        assert body["message"] == "Message sent"
        assert body["device"] == "John iPhone"
        assert body["message_id"]

    r = await partner.get(f"/sim/devices/{device['session_id']}/sent")
    received = r.json()["messages"]
    assert [m["message"] for m in received] == ["json", "form", "query"]
    assert {m["to"] for m in received} == {"919876543210"}
    assert [m["message_id"] for m in received] == [s.json()["message_id"] for s in sent]
