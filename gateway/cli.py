"""The `wagate` command: serve, init, operator-token, partners, devices, qr, sim, version."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import httpx

from gateway import __version__
from gateway.config import Config, load_config, render_example
from gateway.datadir import init_data_dir
from gateway.errors import ConfigError, WagateError
from gateway.operator import OPERATOR_HEADER, operator_token
from gateway.phone import normalize_phone
from gateway.qr import qr_text
from gateway.store import Store, open_store
from gateway.tls import client_context
from gateway.tokens import PARTNER_KEY, new_token, token_hash


def main(argv: Sequence[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        raise SystemExit(2)
    try:
        config = load_config(args.config)
        args.func(config, args)
    except ConfigError as exc:
        print(f"wagate: config error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except WagateError as exc:
        print(f"wagate: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except httpx.HTTPError as exc:
        print(f"wagate: cannot reach the daemon: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="wagate", description="Self-hosted WhatsApp device gateway.")
    p.add_argument("--config", metavar="PATH", help="TOML config file (default: $WAGATE_CONFIG)")
    sub = p.add_subparsers(title="commands", metavar="COMMAND")

    s = sub.add_parser("serve", help="run the daemon (initialises an empty data directory)")
    s.add_argument("--host", help="override server.host")
    s.add_argument("--port", type=int, help="override server.port")
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("init", help="create the data directory, server secret and database; "
                       "prints the operator token")
    s.add_argument("--write-config", metavar="PATH",
                   help="also write a documented config file there (not overwritten)")
    s.set_defaults(func=cmd_init)

    s = sub.add_parser("operator-token", help="print the operator token (for the operator "
                       "console and the x-operator-token header)")
    s.set_defaults(func=cmd_operator_token)

    partners = sub.add_parser("partners", help="manage partners").add_subparsers(
        title="partner commands", metavar="ACTION")
    s = partners.add_parser("list", help="list partners")
    s.set_defaults(func=_store_cmd(partners_list))
    s = partners.add_parser("create", help="create a partner and print its API key")
    s.add_argument("--name", required=True)
    s.add_argument("--email", required=True)
    s.add_argument("--domain", default="")
    s.set_defaults(func=_store_cmd(partners_create))
    s = partners.add_parser("rotate-key", help="issue a new primary API key (the old primary "
                            "key stops working; other named keys stay)")
    s.add_argument("partner_id", type=int)
    s.set_defaults(func=_store_cmd(partners_rotate))
    s = partners.add_parser("approve", help="approve a pending partner (its key starts working)")
    s.add_argument("partner_id", type=int)
    s.set_defaults(func=cmd_partner_status, action="approve")
    s = partners.add_parser("suspend", help="suspend a partner: 403 everywhere, sending stops")
    s.add_argument("partner_id", type=int)
    s.add_argument("--reason", help="shown to the partner in the 403 answer")
    s.set_defaults(func=cmd_partner_status, action="suspend")
    s = partners.add_parser("resume", help="resume a suspended partner")
    s.add_argument("partner_id", type=int)
    s.set_defaults(func=cmd_partner_status, action="resume")
    s = partners.add_parser("limits", help="show or set a partner's rate limits")
    s.add_argument("partner_id", type=int)
    s.add_argument("--api", type=_rate, metavar="N|default", default=argparse.SUPPRESS,
                   help="requests per minute per API key (0: unlimited)")
    s.add_argument("--send", type=_rate, metavar="N|default", default=argparse.SUPPRESS,
                   help="requests per minute per send URL (0: unlimited)")
    s.set_defaults(func=cmd_partner_limits)

    s = sub.add_parser("audit", help="show the audit log (newest first)")
    s.add_argument("--partner", type=int, help="only this partner's entries")
    s.add_argument("--limit", type=int, default=50, help="entries to show (1-200)")
    s.set_defaults(func=cmd_audit)

    devices = sub.add_parser("devices", help="inspect devices").add_subparsers(
        title="device commands", metavar="ACTION")
    s = devices.add_parser("list", help="list devices with their status")
    s.add_argument("--partner", type=int, help="only this partner's devices")
    s.set_defaults(func=_store_cmd(devices_list))

    s = sub.add_parser("qr", help="draw a device's current QR code in the terminal")
    s.add_argument("session_id")
    s.add_argument("--wait", type=float, default=30, help="seconds to wait for a code")
    s.set_defaults(func=cmd_qr)

    sim = sub.add_parser("sim", help="act as the phone of the simulated driver").add_subparsers(
        title="simulator commands", metavar="ACTION")
    s = sim.add_parser("scan", help="scan the device's current QR code with PHONE")
    s.add_argument("session_id")
    s.add_argument("phone")
    s.set_defaults(func=cmd_sim_scan)

    s = sub.add_parser("doctor", help="check the installation; prints a fix for each failure")
    s.add_argument("--live", action="store_true",
                   help="also link a real phone (QR in the terminal) and send one message")
    s.add_argument("--to", metavar="PHONE", help="with --live: who receives the message")
    s.add_argument("--message", default="wagate live check", help="with --live: the text")
    s.set_defaults(func=cmd_doctor)

    s = sub.add_parser("backup", help="online backup of the database, secret and WhatsApp stores")
    s.add_argument("path", help="a new or empty directory")
    s.set_defaults(func=cmd_backup)

    s = sub.add_parser("version", help="print the version")
    s.set_defaults(func=lambda config, args: print(f"wagate {__version__}"))
    return p


def cmd_serve(config: Config, args: argparse.Namespace) -> None:
    from dataclasses import replace

    from gateway.server import serve

    server = config.server
    if args.host:
        server = replace(server, host=args.host)
    if args.port:
        server = replace(server, port=args.port)
    serve(replace(config, server=server))


def cmd_init(config: Config, args: argparse.Namespace) -> None:
    vault = init_data_dir(config)

    async def migrate() -> int:
        store = await open_store(str(config.database_path))
        try:
            return await store.schema_version()
        finally:
            await store.close()

    version = asyncio.run(migrate())
    print(f"data directory: {config.data_dir.resolve()}")
    print(f"database:       {config.database_path} (schema v{version})")
    print(f"server secret:  {config.data_dir / 'server.secret'} (back it up with the database)")
    if args.write_config:
        path = Path(args.write_config)
        if path.exists():
            print(f"config:         {path} exists; left as it is")
        else:
            path.write_text(render_example())
            print(f"config:         {path} written")
    print(f"operator token: {operator_token(vault)}")
    print(f"  sign in with it at {config.public_url}/console/operator, or send it as the "
          f"{OPERATOR_HEADER} header to /admin/…; `wagate operator-token` prints it again")


def cmd_operator_token(config: Config, args: argparse.Namespace) -> None:
    print(operator_token(init_data_dir(config)))


Handler = Callable[[Store, Config, argparse.Namespace], Coroutine[Any, Any, None]]


def _store_cmd(fn: Handler) -> Callable[[Config, argparse.Namespace], None]:
    def run(config: Config, args: argparse.Namespace) -> None:
        init_data_dir(config)

        async def go() -> None:
            store = await open_store(str(config.database_path))
            try:
                await fn(store, config, args)
            finally:
                await store.close()

        asyncio.run(go())

    return run


def _table(rows: list[list[Any]], headers: list[str]) -> None:
    cells = [headers, *[["" if c is None else str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for r in cells:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def _limit_text(value: int | None, default: int) -> str:
    if value is None:
        return f"{default or 'unlimited'} (default)"
    return str(value or "unlimited")


async def partners_list(store: Store, config: Config, args: argparse.Namespace) -> None:
    rows = []
    sec = config.security
    for p in await store.list_partners():
        counts = await store.partner_counts(p.id)
        rows.append([p.id, p.name, p.email, p.domain, p.status, counts["users"],
                     counts["devices"]["total"],
                     _limit_text(p.api_rate_per_minute, sec.api_rate_per_minute),
                     _limit_text(p.send_rate_per_minute, sec.send_rate_per_minute)])
    _table(rows, ["ID", "NAME", "EMAIL", "DOMAIN", "STATUS", "USERS", "DEVICES", "API/MIN",
                  "SEND/MIN"])


async def partners_create(store: Store, config: Config, args: argparse.Namespace) -> None:
    key = new_token(PARTNER_KEY)
    partner = await store.create_partner(args.name, args.email, args.domain, token_hash(key))
    await store.set_key_hint(token_hash(key), key[-4:])
    await store.add_audit(partner.id, "operator", None, "cli", "partner.created",
                          str(partner.id), None, {"name": args.name, "email": args.email})
    print(f"partner {partner.id} created; API key (shown once): {key}")


async def partners_rotate(store: Store, config: Config, args: argparse.Namespace) -> None:
    if await store.partner_by_id(args.partner_id) is None:
        raise WagateError(f"no partner {args.partner_id}")
    key = new_token(PARTNER_KEY)
    await store.set_partner_key(args.partner_id, token_hash(key))
    await store.set_key_hint(token_hash(key), key[-4:])
    await store.add_audit(args.partner_id, "operator", None, "cli", "partner.key_rotated",
                          str(args.partner_id), None, {})
    print(f"partner {args.partner_id}: new API key (shown once): {key}")


def _rate(text: str) -> int | None:
    if text == "default":
        return None
    if not text.isdigit():
        raise argparse.ArgumentTypeError("a whole number of requests per minute, or default")
    return int(text)


def _print_partner(p: dict[str, Any]) -> None:
    limits = p["limits"]
    print(f"partner {p['partner_id']} ({p['name']}): {p['status']}"
          + (f" ({p['status_reason']})" if p.get("status_reason") else ""))
    print(f"  API requests per minute per key: "
          f"{limits['effective_api_rate_per_minute'] or 'unlimited'}"
          + (" (default)" if limits["api_rate_per_minute"] is None else ""))
    print(f"  requests per minute per send URL: "
          f"{limits['effective_send_rate_per_minute'] or 'unlimited'}"
          + (" (default)" if limits["send_rate_per_minute"] is None else ""))


def cmd_partner_status(config: Config, args: argparse.Namespace) -> None:
    body = {"reason": args.reason} if getattr(args, "reason", None) else {}
    with _admin(config) as client:
        r = client.post(f"/admin/partners/{args.partner_id}/{args.action}", json=body)
        _print_partner(_checked(r)["partner"])


def cmd_partner_limits(config: Config, args: argparse.Namespace) -> None:
    body: dict[str, Any] = {}
    if hasattr(args, "api"):
        body["api_rate_per_minute"] = args.api
    if hasattr(args, "send"):
        body["send_rate_per_minute"] = args.send
    with _admin(config) as client:
        if body:
            r = client.post(f"/admin/partners/{args.partner_id}/limits", json=body)
        else:
            r = client.get(f"/admin/partners/{args.partner_id}")
        _print_partner(_checked(r)["partner"])


def cmd_audit(config: Config, args: argparse.Namespace) -> None:
    params: dict[str, Any] = {"limit": args.limit}
    if args.partner is not None:
        params["partner_id"] = args.partner
    with _admin(config) as client:
        entries = _checked(client.get("/admin/audit", params=params))["entries"]
    _table([[e["at"], e["partner_id"], e["action"], e["target"],
             e["key_name"] if e["actor"] == "key" else e["actor"], e["ip"],
             ", ".join(f"{k}={v}" for k, v in e["detail"].items())] for e in entries],
           ["AT", "PARTNER", "ACTION", "TARGET", "ACTOR", "IP", "DETAIL"])


async def devices_list(store: Store, config: Config, args: argparse.Namespace) -> None:
    devices = await store.all_devices()
    if args.partner is not None:
        devices = [d for d in devices if d.partner_id == args.partner]
    _table([[d.session_id, d.partner_id, d.name, d.status, d.phone, d.last_error]
            for d in devices], ["SESSION", "PARTNER", "NAME", "STATUS", "PHONE", "LAST ERROR"])


def _admin(config: Config) -> httpx.Client:
    token = operator_token(init_data_dir(config))
    return httpx.Client(base_url=config.local_url, headers={OPERATOR_HEADER: token}, timeout=35,
                        verify=client_context())


def cmd_qr(config: Config, args: argparse.Namespace) -> None:
    with _admin(config) as client:
        r = client.get(f"/admin/devices/{args.session_id}/qr", params={"wait": args.wait})
        data = _checked(r)
    if data["type"] == "connected":
        print(f"{args.session_id} is linked and connected as +{data['phone']}")
    elif data["type"] == "success":
        print(qr_text(data["code"]))
        print(f"Scan with WhatsApp > Linked devices on the phone. Expires in {data['expires_in']}s;"
              " run again for the next code.")
    else:
        raise WagateError(f"no QR code yet ({data.get('status')}): {data.get('message')}")


def cmd_sim_scan(config: Config, args: argparse.Namespace) -> None:
    phone = normalize_phone(args.phone, "phone")
    with _admin(config) as client:
        r = client.post(f"/admin/sim/devices/{args.session_id}/scan", json={"phone": phone})
        data = _checked(r)
    print(f"{args.session_id} linked as {data['jid']}")


def cmd_doctor(config: Config, args: argparse.Namespace) -> None:
    from gateway.doctor import run_checks

    checks = run_checks(config)
    _table([[c.name, "ok" if c.ok else "FAIL", c.detail, c.fix] for c in checks],
           ["CHECK", "STATUS", "DETAIL", "FIX"])
    ok = all(c.ok for c in checks)
    if args.live:
        from gateway.live_check import live_check

        if not args.to:
            raise WagateError("doctor --live needs --to PHONE (who receives the test message)")
        print("\nlive check: link a phone, send one message, show its receipts")
        ok = asyncio.run(live_check(config, args.to, args.message, sys.stdout)) and ok
    if not ok:
        raise SystemExit(1)


def cmd_backup(config: Config, args: argparse.Namespace) -> None:
    from gateway.backup import backup

    for path in backup(config, Path(args.path)):
        print(path)
    print("restore: stop wagate, copy these files into the data directory, start wagate")


def _checked(r: httpx.Response) -> dict[str, Any]:
    try:
        data: dict[str, Any] = r.json()
    except ValueError:
        raise WagateError(f"daemon answered {r.status_code} without JSON") from None
    if r.status_code >= 400:
        raise WagateError(f"{data.get('code', r.status_code)}: {data.get('message', '')}")
    return data


if __name__ == "__main__":  # pragma: no cover
    main()
