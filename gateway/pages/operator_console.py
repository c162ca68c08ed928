"""The operator console under `/console/operator`: sign in with the operator token (`wagate init`
prints it, `wagate operator-token` prints it again), then partners (approve, suspend, resume),
devices across partners, health and queue depths, and the audit log.

Sessions, CSRF and security headers are the partner console's (`gateway.pages.console`) in a
`Realm` of their own: cookie `wagate_operator` on path `/console/operator`, a session table of its
own under its own HMAC key. A partner session is not found here and an operator session is not
found among the partners'. A session remembers the hash of the token it was opened with and is
checked against the current one on every request. Status changes go through
`gateway.api.admin.change_partner_status`, exactly as the `/admin` routes do, audited with the
operator as the actor.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from gateway import __version__
from gateway.api.admin import MAX_REASON, change_partner_status, find_partner, partner_view
from gateway.api.auth import services
from gateway.api.ops import gauges
from gateway.errors import ApiError
from gateway.operator import operator_token
from gateway.pages.console import (
    ConsoleSession,
    Flash,
    Realm,
    _form,
    _live,
    _sessions,
    csrf_ok,
    end_session,
    form_expired,
    login_form,
    login_form_ok,
    session_of,
    signed_out,
    start_session,
)
from gateway.pages.render import html
from gateway.security.audit import entry_view
from gateway.security.guard import check_blocked, lookup_failed
from gateway.services import Services
from gateway.tokens import token_hash

OPERATOR_REALM = Realm("operator_console", "wagate_operator", "wagate_operator_login",
                       "/console/operator", "/console/operator/partners", "operator/layout.html",
                       "wagate operator console", "operator_token", "Operator token", "op_…")
AUDIT_PAGE = 100
DONE = {"approve": "approved", "suspend": "suspended", "resume": "resumed"}


@dataclass
class OperatorCtx:
    """A signed-in operator request: their session and (for a POST) the form."""

    request: Request
    svc: Services
    session: ConsoleSession
    form: dict[str, str] = field(default_factory=dict)

    def flash(self, kind: str, message: str, detail: str | None = None) -> None:
        self.session.flashes.append(Flash(kind, message, detail))

    def render(self, template: str, status_code: int = 200, **context: Any) -> Response:
        flashes, self.session.flashes = self.session.flashes, []
        return html(template, status_code, csrf=self.session.csrf, flashes=flashes,
                    layout=OPERATOR_REALM.layout, home=OPERATOR_REALM.home, **context)

    def redirect(self, path: str) -> Response:
        return RedirectResponse(path, status_code=303)


Handler = Callable[[OperatorCtx], Awaitable[Response]]


def _token_hash(svc: Services) -> str:
    return token_hash(operator_token(svc.vault))


def _signed_in(request: Request) -> ConsoleSession | None:
    found = session_of(request, OPERATOR_REALM)
    if found is None:
        return None
    sid, session = found
    if not hmac.compare_digest(session.key_hash, _token_hash(services(request))):
        _sessions(request, OPERATOR_REALM).drop(sid)  # opened with another server secret
        return None
    return session


def page(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Wrap an operator page: require an operator session, check the CSRF token of a POST."""

    async def endpoint(request: Request) -> Response:
        session = _signed_in(request)
        if session is None:
            return signed_out(OPERATOR_REALM, api=False)
        request.state.operator = True  # the audit log's actor
        ctx = OperatorCtx(request, services(request), session)
        if request.method == "POST":
            ctx.form = await _form(request)
            if not csrf_ok(ctx.form.get("csrf", ""), session.csrf):
                return form_expired(OPERATOR_REALM, session)
        return await handler(ctx)

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


# -- sign in / out -----------------------------------------------------------------------------


async def home(request: Request) -> Response:
    """The operator console's start page (redirects to the partners)."""
    return RedirectResponse(OPERATOR_REALM.home, status_code=303)


async def login_page(request: Request) -> Response:
    """Operator sign-in form (operator token)."""
    if _signed_in(request) is not None:
        return RedirectResponse(OPERATOR_REALM.home, status_code=303)
    return await login_form(request, realm=OPERATOR_REALM)


async def login(request: Request) -> Response:
    """Operator sign-in: a session cookie for the operator token."""
    form = await _form(request)
    if not login_form_ok(request, form, OPERATOR_REALM):
        return await login_form(request, "The sign-in form expired; please try again.", 403,
                                OPERATOR_REALM)
    check_blocked(request)  # too many failed sign-ins (or other lookups) from this address: 429
    given = form.get(OPERATOR_REALM.credential, "").strip()
    expected = operator_token(services(request).vault)
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        lookup_failed(request)
        return await login_form(request, "That is not the operator token.", 401, OPERATOR_REALM)
    return start_session(request, OPERATOR_REALM, token_hash(expected))


async def logout(ctx: OperatorCtx) -> Response:
    """Sign out of the operator console."""
    return end_session(ctx.request, OPERATOR_REALM)


# -- partners ----------------------------------------------------------------------------------


async def partners_page(ctx: OperatorCtx) -> Response:
    """Partners with their status and counts; approve, suspend, resume."""
    store = ctx.svc.store
    rows = []
    for p in await store.list_partners():
        counts = await store.partner_counts(p.id)
        rows.append({**partner_view(ctx.svc, p, counts),
                     "messages": counts["messages"]["total"]})
    return ctx.render("operator/partners.html", nav="partners", partners=rows)


async def _change(ctx: OperatorCtx, change: str) -> Response:
    partner = await find_partner(ctx.svc, ctx.request.path_params["partner_id"])
    if partner is None:
        return ctx.render("console/error.html", 404, title="Not found",
                          message="There is no such partner.")
    reason = (ctx.form.get("reason", "").strip() or None) if change == "suspend" else None
    if reason is not None and len(reason) > MAX_REASON:
        ctx.flash("error", f"A reason is at most {MAX_REASON} characters.")
        return ctx.redirect(OPERATOR_REALM.home)
    try:
        await change_partner_status(ctx.request, ctx.svc, partner, change, reason)
    except ApiError as exc:
        ctx.flash("error", f"Partner {partner.id} ({partner.name}): {exc.message}.")
    else:
        ctx.flash("ok", f"Partner {partner.id} ({partner.name}) {DONE[change]}.")
    return ctx.redirect(OPERATOR_REALM.home)


async def approve(ctx: OperatorCtx) -> Response:
    """Approve a pending partner: its keys start working."""
    return await _change(ctx, "approve")


async def suspend(ctx: OperatorCtx) -> Response:
    """Suspend a partner: 403 partner_suspended everywhere, its queued messages held."""
    return await _change(ctx, "suspend")


async def resume(ctx: OperatorCtx) -> Response:
    """Resume a suspended partner: sending resumes where it stopped."""
    return await _change(ctx, "resume")


# -- devices, health, audit --------------------------------------------------------------------


async def devices_page(ctx: OperatorCtx) -> Response:
    """Devices across all partners with their live status."""
    store = ctx.svc.store
    names = {p.id: p.name for p in await store.list_partners()}
    rows = [{"partner_id": d.partner_id, "partner": names.get(d.partner_id, ""),
             "device_name": d.name, **_live(ctx.svc, d)} for d in await store.all_devices()]
    return ctx.render("operator/devices.html", nav="devices", devices=rows)


async def health_page(ctx: OperatorCtx) -> Response:
    """Health: version, driver, sessions, devices by state and queue depths."""
    svc = ctx.svc
    now = await gauges(svc)
    return ctx.render("operator/health.html", nav="health", version=__version__,
                      driver=svc.driver.name, sessions_ready=svc.manager.ready,
                      public_url=svc.config.public_url, devices=now.devices,
                      devices_total=sum(now.devices.values()),
                      queued=now.messages.get("queued", 0),
                      sending=now.messages.get("sending", 0), queue_depth=now.queue_depth,
                      webhook_backlog=now.webhook_backlog, messages=now.messages)


async def audit_page(ctx: OperatorCtx) -> Response:
    """The audit log, newest first (the latest 100 entries)."""
    store = ctx.svc.store
    names = {p.id: p.name for p in await store.list_partners()}
    entries = [entry_view(e) for e in await store.list_audit(None, AUDIT_PAGE)]
    return ctx.render("operator/audit.html", nav="audit", entries=entries, partners=names,
                      limit=AUDIT_PAGE)


P = "/console/operator/partners/{partner_id}"

routes = [
    Route("/console/operator", home, methods=["GET"]),
    Route("/console/operator/login", login_page, methods=["GET"]),
    Route("/console/operator/login", login, methods=["POST"]),
    Route("/console/operator/logout", page(logout), methods=["POST"]),
    Route("/console/operator/partners", page(partners_page), methods=["GET"]),
    Route(f"{P}/approve", page(approve), methods=["POST"]),
    Route(f"{P}/suspend", page(suspend), methods=["POST"]),
    Route(f"{P}/resume", page(resume), methods=["POST"]),
    Route("/console/operator/devices", page(devices_page), methods=["GET"]),
    Route("/console/operator/health", page(health_page), methods=["GET"]),
    Route("/console/operator/audit", page(audit_page), methods=["GET"]),
]
