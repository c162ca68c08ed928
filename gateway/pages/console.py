"""The partner dashboard under `/console`: sign in with the API key, then users, devices (live
status, QR code, link pages, a test send), messages with their timeline, webhooks with their
delivery log.

Sessions live in this process's memory: the cookie holds a random session id (never the API key),
looked up by its HMAC under `vault.secret_for("console")`. A session remembers the hash of the key
it was opened with, so rotating the key (`wagate partners rotate-key`) ends it; it also ends after
`IDLE_SECONDS` without a request, `SESSION_SECONDS` in all, on sign-out, and when the daemon
restarts. Every POST carries the session's CSRF token (the sign-in form a double-submit cookie's),
checked before anything else; the cookie is HttpOnly, SameSite=Lax, and Secure when the public URL
is https. The operator console (`gateway.pages.operator_console`) uses the same machinery in a
`Realm` of its own.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from gateway.api.auth import services
from gateway.api.devices import UNLINKED_IDLE, add_device, device_view
from gateway.api.links import DEFAULT_EXPIRES_IN, MAX_EXPIRES_IN, link_url, make_link
from gateway.api.messages import message_view
from gateway.api.responses import JSON, iso
from gateway.api.webhooks import add_webhook, webhook_view
from gateway.errors import ApiError, NotFound
from gateway.pages.render import html, qr_image, qr_version, secure
from gateway.security.audit import record
from gateway.security.guard import check_blocked, lookup_failed
from gateway.services import Services
from gateway.store import Device, Partner
from gateway.store.base import WebhookEndpoint
from gateway.tokens import (
    PARTNER_KEY,
    USER_TOKEN,
    new_nonce,
    token_hash,
    well_formed,
)

COOKIE = "wagate_console"
LOGIN_COOKIE = "wagate_login"
SESSION_SECONDS = 12 * 3600.0
IDLE_SECONDS = 2 * 3600.0
MAX_SESSIONS = 10_000
PAGE = 50
WEBHOOK_EVENTS = ("*", "message.*", "device.*")
LINK_LIFETIMES = {"3600": "1 hour", "86400": "24 hours", "604800": "7 days"}


@dataclass
class Flash:
    kind: str  # ok | error
    message: str
    detail: str | None = None


@dataclass
class ConsoleSession:
    key_hash: str
    csrf: str
    expires_at: float
    idle_until: float
    flashes: list[Flash] = field(default_factory=list)


class Sessions:
    """Session id -> session, keyed by the id's HMAC so the ids themselves are not kept."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self._by_key: dict[str, ConsoleSession] = {}

    def _key(self, sid: str) -> str:
        return hmac.new(self._secret, sid.encode(), hashlib.sha256).hexdigest()

    def create(self, key_hash: str, now: float) -> tuple[str, ConsoleSession]:
        if len(self._by_key) >= MAX_SESSIONS:
            self._by_key = {k: s for k, s in self._by_key.items() if self._live(s, now)}
            while len(self._by_key) >= MAX_SESSIONS:  # still full: the oldest make room
                del self._by_key[next(iter(self._by_key))]
        sid = secrets.token_urlsafe(32)
        session = ConsoleSession(key_hash, secrets.token_urlsafe(32), now + SESSION_SECONDS,
                                 now + IDLE_SECONDS)
        self._by_key[self._key(sid)] = session
        return sid, session

    @staticmethod
    def _live(session: ConsoleSession, now: float) -> bool:
        return now < session.expires_at and now < session.idle_until

    def get(self, sid: str, now: float) -> ConsoleSession | None:
        key = self._key(sid)
        session = self._by_key.get(key)
        if session is None:
            return None
        if not self._live(session, now):
            del self._by_key[key]
            return None
        session.idle_until = now + IDLE_SECONDS
        return session

    def drop(self, sid: str) -> None:
        self._by_key.pop(self._key(sid), None)


@dataclass(frozen=True)
class Realm:
    """One kind of console session: the partner console's or the operator console's. Each has
    its own cookies on its own path and its own session table under its own HMAC key, so a
    session of one kind is not even found by the other kind's pages."""

    name: str  # names the session table (app.state) and its key (vault.secret_for)
    cookie: str
    login_cookie: str
    path: str  # the cookies' path; the sign-in form is at {path}/login
    home: str  # where signing in leads
    layout: str  # the pages' layout (the shared error page uses it too)
    title: str  # the sign-in form: its heading, the credential's field name, label, hint
    credential: str
    credential_label: str
    placeholder: str


PARTNER_REALM = Realm("console", COOKIE, LOGIN_COOKIE, "/console", "/console/devices",
                      "console/layout.html", "wagate console", "api_key", "Partner API key",
                      "pk_…")


def _sessions(request: Request, realm: Realm = PARTNER_REALM) -> Sessions:
    state = request.app.state
    attr = f"{realm.name}_sessions"
    found: Sessions | None = getattr(state, attr, None)
    if found is None:
        found = Sessions(services(request).vault.secret_for(realm.name))
        setattr(state, attr, found)
    return found


def session_of(request: Request, realm: Realm) -> tuple[str, ConsoleSession] | None:
    """The live session (and its id) that the request's cookie names in this realm."""
    sid = request.cookies.get(realm.cookie)
    if not sid:
        return None
    session = _sessions(request, realm).get(sid, time.time())
    return None if session is None else (sid, session)


def csrf_ok(given: str, expected: str) -> bool:
    """A form's token against the expected one (constant time; empty never matches)."""
    return bool(given) and bool(expected) and hmac.compare_digest(given.encode(),
                                                                  expected.encode())


@dataclass
class Ctx:
    """A signed-in request: the partner, their session and (for a POST) the form."""

    request: Request
    svc: Services
    partner: Partner
    session: ConsoleSession
    form: dict[str, str] = field(default_factory=dict)

    def flash(self, kind: str, message: str, detail: str | None = None) -> None:
        self.session.flashes.append(Flash(kind, message, detail))

    def render(self, template: str, status_code: int = 200, **context: Any) -> Response:
        flashes, self.session.flashes = self.session.flashes, []
        return html(template, status_code, partner=self.partner, csrf=self.session.csrf,
                    flashes=flashes, **context)

    def redirect(self, path: str) -> Response:
        return RedirectResponse(path, status_code=303)


Handler = Callable[[Ctx], Awaitable[Response]]


class _Missing(Exception):
    """Another partner's (or no) such thing: a 404 page."""


async def _form(request: Request) -> dict[str, str]:
    form = await request.form(max_files=0, max_fields=50)
    return {k: v for k, v in form.items() if isinstance(v, str)}


def _secure_cookie(svc: Services) -> bool:
    return svc.config.public_url.startswith("https://")


async def _signed_in(request: Request) -> tuple[Partner, ConsoleSession] | None:
    found = session_of(request, PARTNER_REALM)
    if found is None:
        return None
    sid, session = found
    partner = await services(request).store.partner_by_key_hash(session.key_hash)
    if partner is None:  # the key was rotated since sign-in
        _sessions(request).drop(sid)
        return None
    return partner, session


def signed_out(realm: Realm, api: bool) -> Response:
    """No session: the pages go to the sign-in form, their scripts' JSON routes answer 401."""
    if api:
        return secure(JSON({"type": "error", "code": "signed_out",
                            "message": "sign in again"}, status_code=401))
    return RedirectResponse(f"{realm.path}/login", status_code=303)


def form_expired(realm: Realm, session: ConsoleSession, **context: Any) -> Response:
    """The 403 page for a POST without the session's CSRF token."""
    return html("console/error.html", 403, csrf=session.csrf, layout=realm.layout,
                home=realm.home, title="Form expired",
                message="This form was not accepted (its security token is missing or stale). "
                        "Go back, reload the page and try again.", **context)


def page(handler: Handler, *, api: bool = False) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a console handler: require a session, check the CSRF token of a POST, map a
    missing resource to the 404 page."""

    async def endpoint(request: Request) -> Response:
        signed_in = await _signed_in(request)
        if signed_in is None:
            return signed_out(PARTNER_REALM, api)
        partner, session = signed_in
        request.state.console = True  # the audit log's actor
        ctx = Ctx(request, services(request), partner, session)
        if request.method == "POST":
            ctx.form = await _form(request)
            if not csrf_ok(ctx.form.get("csrf", ""), session.csrf):
                return form_expired(PARTNER_REALM, session, partner=partner)
        try:
            return await handler(ctx)
        except _Missing:
            if api:
                return secure(JSON({"type": "error", "code": "not_found",
                                    "message": "no such thing"}, status_code=404))
            return ctx.render("console/error.html", 404, title="Not found",
                              message="There is no such thing here.")

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


# -- sign in / out -----------------------------------------------------------------------------


async def login_form(request: Request, error: str | None = None, status: int = 200,
                     realm: Realm = PARTNER_REALM) -> Response:
    """The sign-in form, with a fresh double-submit token in its form and its cookie."""
    token = secrets.token_urlsafe(32)
    response = html("console/login.html", status, login_csrf=token, error=error, realm=realm)
    response.set_cookie(realm.login_cookie, token, max_age=3600, path=realm.path, httponly=True,
                        samesite="strict", secure=_secure_cookie(services(request)))
    return response


def login_form_ok(request: Request, form: dict[str, str], realm: Realm = PARTNER_REALM) -> bool:
    """The sign-in form's double-submit check: its token is its login cookie's."""
    return csrf_ok(form.get("csrf", ""), request.cookies.get(realm.login_cookie, ""))


def start_session(request: Request, realm: Realm, key_hash: str) -> Response:
    """A checked credential: a new session, its cookie, and on to the realm's start page."""
    sid, _ = _sessions(request, realm).create(key_hash, time.time())
    response = RedirectResponse(realm.home, status_code=303)
    response.set_cookie(realm.cookie, sid, max_age=int(SESSION_SECONDS), path=realm.path,
                        httponly=True, samesite="lax", secure=_secure_cookie(services(request)))
    response.delete_cookie(realm.login_cookie, path=realm.path)
    return response


def end_session(request: Request, realm: Realm) -> Response:
    """Sign out: the session is dropped and its cookie deleted."""
    _sessions(request, realm).drop(request.cookies.get(realm.cookie, ""))
    response = RedirectResponse(f"{realm.path}/login", status_code=303)
    response.delete_cookie(realm.cookie, path=realm.path, httponly=True, samesite="lax",
                           secure=_secure_cookie(services(request)))
    return response


async def login_page(request: Request) -> Response:
    """Sign-in form (partner API key)."""
    if await _signed_in(request) is not None:
        return RedirectResponse(PARTNER_REALM.home, status_code=303)
    return await login_form(request)


async def login(request: Request) -> Response:
    """Sign in: a session cookie for a valid API key."""
    svc = services(request)
    form = await _form(request)
    if not login_form_ok(request, form):
        return await login_form(request, "The sign-in form expired; please try again.", 403)
    key = form.get("api_key", "").strip()
    check_blocked(request)  # too many failed sign-ins (or other lookups) from this address: 429
    partner = None
    if well_formed(key, PARTNER_KEY):
        partner = await svc.store.partner_by_key_hash(token_hash(key))
    if partner is None:
        lookup_failed(request)
        return await login_form(request, "That API key is not valid.", 401)
    return start_session(request, PARTNER_REALM, token_hash(key))


async def logout(ctx: Ctx) -> Response:
    """Sign out: ends the session."""
    return end_session(ctx.request, PARTNER_REALM)


async def home(request: Request) -> Response:
    """The console's start page (redirects to the devices)."""
    return RedirectResponse("/console/devices", status_code=303)


# -- users -------------------------------------------------------------------------------------


async def users_page(ctx: Ctx) -> Response:
    """End users, with their user tokens."""
    store = ctx.svc.store
    users = await store.list_users(ctx.partner.id)
    count: dict[int, int] = {}
    for d in await store.list_devices(ctx.partner.id):
        count[d.user_id] = count.get(d.user_id, 0) + 1
    rows = [{"label": u.label, "email": u.email, "user_token": ctx.svc.user_token(u),
             "devices": count.get(u.id, 0), "created_at": u.created_at} for u in users]
    return ctx.render("console/users.html", nav="users", users=rows)


async def create_user(ctx: Ctx) -> Response:
    """Create an end user."""
    label = ctx.form.get("label", "").strip()
    email = ctx.form.get("email", "").strip()
    if not label or len(label) > 200:
        ctx.flash("error", "A user needs a label (up to 200 characters).")
        return ctx.redirect("/console/users")
    if email and ("@" not in email or len(email) > 254 or any(c.isspace() for c in email)):
        ctx.flash("error", "That email address does not look right.")
        return ctx.redirect("/console/users")
    nonce = new_nonce()
    token = ctx.svc.vault.derive(USER_TOKEN, nonce)
    await ctx.svc.store.create_user(ctx.partner.id, label, email, nonce, token_hash(token))
    ctx.flash("ok", f"User “{label}” created. Their user token:", token)
    return ctx.redirect("/console/users")


# -- devices -----------------------------------------------------------------------------------


async def _device(ctx: Ctx) -> Device:
    device = await ctx.svc.store.device_by_session(ctx.partner.id,
                                                   ctx.request.path_params["session_id"])
    if device is None:
        raise _Missing
    return device


def _live(svc: Services, device: Device) -> dict[str, Any]:
    """A device's status for the live parts of the pages."""
    sup = svc.manager.get(device.id)
    status = sup.status.value if sup else device.status
    phone = sup.phone if sup else device.phone
    qr = None
    if sup is not None and sup.qr is not None and not sup.linked:
        qr = f"/console/devices/{device.session_id}/qr.png?v={qr_version(sup.qr)}"
    return {"session_id": device.session_id, "status": status,
            "phone": f"+{phone}" if phone else None, "qr": qr,
            "last_error": sup.last_error if sup else device.last_error,
            "idle": sup is not None and not sup.linked and sup.status in UNLINKED_IDLE}


async def devices_page(ctx: Ctx) -> Response:
    """Devices with their live status."""
    store = ctx.svc.store
    users = await store.list_users(ctx.partner.id)
    names = {u.id: u.label for u in users}
    devices = await store.list_devices(ctx.partner.id)
    rows = [{**device_view(ctx.svc, d), **_live(ctx.svc, d), "user": names.get(d.user_id, "")}
            for d in devices]
    return ctx.render("console/devices.html", nav="devices", devices=rows, users=users)


async def devices_status(ctx: Ctx) -> Response:
    """Live status of every device (for the devices page's script)."""
    devices = await ctx.svc.store.list_devices(ctx.partner.id)
    return secure(JSON({"devices": [_live(ctx.svc, d) for d in devices]}))


async def create_device(ctx: Ctx) -> Response:
    """Create a device for a user; pairing starts at once."""
    svc = ctx.svc
    name = ctx.form.get("device_name", "").strip()
    users = {str(u.id): u for u in await svc.store.list_users(ctx.partner.id)}
    user = users.get(ctx.form.get("user", ""))
    if user is None:
        ctx.flash("error", "Choose the user the device belongs to (create one first).")
        return ctx.redirect("/console/devices")
    if not name or len(name) > 100:
        ctx.flash("error", "A device needs a name (up to 100 characters).")
        return ctx.redirect("/console/devices")
    device, _, _ = await add_device(svc, ctx.partner.id, user.id, name)
    ctx.flash("ok", f"Device “{name}” created; pairing has started.")
    return ctx.redirect(f"/console/devices/{device.session_id}")


async def device_page(ctx: Ctx) -> Response:
    """One device: status, QR code, link pages, test send."""
    device = await _device(ctx)
    return ctx.render("console/device.html", nav="devices",
                      device={**device_view(ctx.svc, device), **_live(ctx.svc, device)},
                      lifetimes=LINK_LIFETIMES)


async def device_state(ctx: Ctx) -> Response:
    """Live status and QR code of one device (for the device page's script)."""
    device = await _device(ctx)
    return secure(JSON(_live(ctx.svc, device)))


async def device_qr(ctx: Ctx) -> Response:
    """The device's current QR code as PNG."""
    device = await _device(ctx)
    sup = ctx.svc.manager.get(device.id)
    if sup is None or sup.qr is None:
        return secure(JSON({"type": "error", "code": "qr_not_ready",
                            "message": "no QR code is being shown"}, status_code=404))
    return secure(Response(qr_image(sup.qr), media_type="image/png"))


async def device_start(ctx: Ctx) -> Response:
    """Start pairing (an unlinked device) or restart the session (a linked one)."""
    device = await _device(ctx)
    sup = ctx.svc.manager.get(device.id)
    if sup is None:
        ctx.flash("error", "The device's session is not running (is the daemon stopping?).")
    elif sup.linked:
        await sup.restart()
        ctx.flash("ok", "Session restarted.")
    else:
        await sup.request_pairing()
        ctx.flash("ok", "Pairing started: a QR code appears in a moment.")
    return ctx.redirect(f"/console/devices/{device.session_id}")


async def device_link(ctx: Ctx) -> Response:
    """Make a link page for the device's owner."""
    device = await _device(ctx)
    raw = ctx.form.get("expires_in", str(int(DEFAULT_EXPIRES_IN)))
    seconds = float(raw) if raw in LINK_LIFETIMES else DEFAULT_EXPIRES_IN
    token, link = await make_link(ctx.svc, device, min(seconds, MAX_EXPIRES_IN))
    await record(ctx.request, ctx.partner.id, "device.link_created", device.session_id,
                 expires_at=iso(link.expires_at))
    ctx.flash("ok", f"Link page made, valid for {LINK_LIFETIMES.get(raw, '24 hours')}. "
                    "Send it to the device's owner:", link_url(ctx.svc, token))
    return ctx.redirect(f"/console/devices/{device.session_id}")


async def device_unlink_pages(ctx: Ctx) -> Response:
    """Revoke every link page of the device."""
    device = await _device(ctx)
    revoked = await ctx.svc.store.revoke_links(ctx.partner.id, device.id)
    await record(ctx.request, ctx.partner.id, "device.links_revoked", device.session_id,
                 revoked=revoked)
    ctx.flash("ok", f"{revoked} link page(s) revoked.")
    return ctx.redirect(f"/console/devices/{device.session_id}")


async def device_send(ctx: Ctx) -> Response:
    """A test send, through the device's own send URL, in-process: exactly what a LAN device
    calling that URL gets (validation, queueing, idempotency, the answer)."""
    device = await _device(ctx)
    to = ctx.form.get("to", "").strip()
    text = ctx.form.get("message", "").strip()
    token = ctx.svc.device_token(device)
    transport = httpx.ASGITransport(app=ctx.request.app, client=("127.0.0.1", 0))
    async with httpx.AsyncClient(transport=transport, base_url="http://console.internal",
                                 timeout=30) as client:
        r = await client.post(f"/wa/{token}/send", data={"to": to, "message": text})
    try:
        answer = r.json()
    except ValueError:
        answer = {"type": "error", "message": r.text[:200]}
    if r.status_code < 300:
        ctx.flash("ok", f"{answer.get('message', 'Sent')} (HTTP {r.status_code}, "
                        f"status {answer.get('status')}).", answer.get("message_id"))
    else:
        ctx.flash("error", f"Not sent (HTTP {r.status_code}): {answer.get('message')}")
    return ctx.redirect(f"/console/devices/{device.session_id}")


# -- messages ----------------------------------------------------------------------------------


async def messages_page(ctx: Ctx) -> Response:
    """A device's messages, newest first."""
    store = ctx.svc.store
    devices = await store.list_devices(ctx.partner.id)
    chosen = ctx.request.query_params.get("device") or (devices[0].session_id if devices
                                                          else None)
    device = next((d for d in devices if d.session_id == chosen), None)
    messages: list[dict[str, Any]] = []
    next_cursor = None
    if device is not None:
        cursor = ctx.request.query_params.get("cursor") or None
        page_ = await store.list_messages(ctx.partner.id, device.id, status=None,
                                          recipient=None, since=None, until=None,
                                          before=cursor, limit=PAGE + 1)
        if len(page_) > PAGE:
            page_ = page_[:PAGE]
            next_cursor = page_[-1].id
        messages = [await message_view(store, m, events=False) for m in page_]
    return ctx.render("console/messages.html", nav="messages", devices=devices, device=device,
                      messages=messages, next_cursor=next_cursor)


async def message_page(ctx: Ctx) -> Response:
    """One message with its status timeline."""
    store = ctx.svc.store
    message = await store.message_by_id(ctx.partner.id, ctx.request.path_params["message_id"])
    if message is None:
        raise _Missing
    device = await store.device_by_id(message.device_id)
    view = await message_view(store, message, events=True)
    return ctx.render("console/message.html", nav="messages", message=view, device=device)


# -- webhooks ----------------------------------------------------------------------------------


async def _endpoint(ctx: Ctx) -> WebhookEndpoint:
    endpoint = await ctx.svc.store.webhook_by_public_id(ctx.partner.id,
                                                        ctx.request.path_params["webhook_id"])
    if endpoint is None:
        raise _Missing
    return endpoint


async def _session_ids(ctx: Ctx) -> dict[int, str]:
    return {d.id: d.session_id for d in await ctx.svc.store.list_devices(ctx.partner.id)}


async def webhooks_page(ctx: Ctx) -> Response:
    """Webhook endpoints."""
    sessions = await _session_ids(ctx)
    hooks = [webhook_view(ctx.svc, e, sessions)
             for e in await ctx.svc.store.list_webhooks(ctx.partner.id)]
    devices = await ctx.svc.store.list_devices(ctx.partner.id)
    return ctx.render("console/webhooks.html", nav="webhooks", webhooks=hooks,
                      devices=devices, events=WEBHOOK_EVENTS)


async def create_webhook(ctx: Ctx) -> Response:
    """Add a webhook endpoint (its secret is shown once)."""
    url = ctx.form.get("url", "").strip()
    events = ctx.form.get("events", "*")
    if events not in WEBHOOK_EVENTS:
        events = "*"
    if not url or len(url) > 2000:
        ctx.flash("error", "A webhook needs a URL.")
        return ctx.redirect("/console/webhooks")
    try:
        endpoint, secret = await add_webhook(ctx.request, ctx.svc, ctx.partner.id, url,
                                             (events,), ctx.form.get("session_id") or None)
    except NotFound:
        raise _Missing from None
    except ApiError as exc:
        ctx.flash("error", f"That URL cannot be used: {exc.message}"
                  if exc.code == "webhook_url_refused" else exc.message)
        return ctx.redirect("/console/webhooks")
    ctx.flash("ok", "Webhook created. Its signing secret (shown once; verify every delivery "
                    "with it):", secret)
    return ctx.redirect(f"/console/webhooks/{endpoint.public_id}")


async def webhook_page(ctx: Ctx) -> Response:
    """One webhook with its delivery log."""
    endpoint = await _endpoint(ctx)
    store = ctx.svc.store
    deliveries = []
    for d in await store.list_deliveries(endpoint.id, PAGE):
        deliveries.append({"delivery": d, "attempts": await store.delivery_attempts(d.id)})
    return ctx.render("console/webhook.html", nav="webhooks",
                      webhook=webhook_view(ctx.svc, endpoint, await _session_ids(ctx)),
                      deliveries=deliveries)


async def webhook_test(ctx: Ctx) -> Response:
    """Queue a test event for a webhook."""
    endpoint = await _endpoint(ctx)
    await ctx.svc.store.fanout(ctx.partner.id, None, "webhook.test",
                               {"webhook_id": endpoint.public_id, "message": "ping"},
                               endpoint_id=endpoint.id)
    ctx.svc.webhooks.wake()
    ctx.flash("ok", "Test event queued.")
    return ctx.redirect(f"/console/webhooks/{endpoint.public_id}")


async def webhook_redeliver(ctx: Ctx) -> Response:
    """Queue a delivery again."""
    endpoint = await _endpoint(ctx)
    raw = ctx.request.path_params["delivery_id"]
    if not raw.isdigit() or not await ctx.svc.store.redeliver(endpoint.id, int(raw)):
        raise _Missing
    ctx.svc.webhooks.wake()
    ctx.flash("ok", f"Delivery {raw} queued again.")
    return ctx.redirect(f"/console/webhooks/{endpoint.public_id}")


# -- still to come -----------------------------------------------------------------------------


async def wallet_page(ctx: Ctx) -> Response:
    """Wallet (placeholder until the wallet issue)."""
    return ctx.render("console/placeholder.html", nav="wallet", title="Wallet",
                      message="The wallet and its transactions arrive with the wallet issue.")


async def plugins_page(ctx: Ctx) -> Response:
    """Plugins (placeholder until the wallet issue)."""
    return ctx.render("console/placeholder.html", nav="plugins", title="Plugins",
                      message="Plugins arrive with the wallet issue.")


def _get(path: str, handler: Handler, *, api: bool = False) -> Route:
    return Route(path, page(handler, api=api), methods=["GET"])


def _post(path: str, handler: Handler) -> Route:
    return Route(path, page(handler), methods=["POST"])


D = "/console/devices/{session_id}"
W = "/console/webhooks/{webhook_id}"

routes = [
    Route("/console", home, methods=["GET"]),
    Route("/console/login", login_page, methods=["GET"]),
    Route("/console/login", login, methods=["POST"]),
    _post("/console/logout", logout),
    _get("/console/users", users_page),
    _post("/console/users", create_user),
    _get("/console/devices", devices_page),
    _post("/console/devices", create_device),
    _get("/console/devices/status", devices_status, api=True),
    _get(D, device_page),
    _get(f"{D}/state", device_state, api=True),
    _get(f"{D}/qr.png", device_qr, api=True),
    _post(f"{D}/start", device_start),
    _post(f"{D}/link", device_link),
    _post(f"{D}/link/revoke", device_unlink_pages),
    _post(f"{D}/send", device_send),
    _get("/console/messages", messages_page),
    _get("/console/messages/{message_id}", message_page),
    _get("/console/webhooks", webhooks_page),
    _post("/console/webhooks", create_webhook),
    _get(W, webhook_page),
    _post(f"{W}/test", webhook_test),
    _post(f"{W}/deliveries/{{delivery_id}}/redeliver", webhook_redeliver),
    _get("/console/wallet", wallet_page),
    _get("/console/plugins", plugins_page),
]
