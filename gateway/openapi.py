"""The OpenAPI 3.1 description of every route, kept in step with the app by a test.

Written as data next to the code rather than generated from handlers: Starlette handlers carry no
schemas, and one table is easier to review than decorators spread over every module.
"""

from __future__ import annotations

from typing import Any

from gateway import __version__
from gateway.security.scopes import SCOPES

Schema = dict[str, Any]
SCOPE_NAMES = list(SCOPES)

STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
BOOL: Schema = {"type": "boolean"}
NUM: Schema = {"type": "number"}
TIME: Schema = {"type": ["string", "null"], "format": "date-time"}
NSTR: Schema = {"type": ["string", "null"]}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(required: list[str] | None = None, **props: Schema) -> Schema:
    schema: Schema = {"type": "object", "properties": props}
    if required:
        schema["required"] = required
    return schema


def success(**props: Schema) -> Schema:
    return {"allOf": [ref("Success"), obj(list(props), **props)]} if props else ref("Success")


SCHEMAS: dict[str, Schema] = {
    "Error": obj(["type", "code", "message"], type={"const": "error"}, code=STR, message=STR,
                 field=STR, status=STR, message_id=STR, scope=STR, retry_after=INT,
                 limit=INT),
    "Success": obj(["type"], type={"const": "success"}),
    "Device": obj(["session_id", "device_name", "status", "send_url", "qr_url"],
                  session_id=STR, device_name=STR, status=STR, phone=NSTR, since=TIME,
                  last_error=NSTR, send_url=NSTR, qr_url=STR, created_at=TIME),
    "User": obj(["user_token", "label"], user_token=STR, label=STR, email=STR, devices=INT,
                created_at=TIME),
    "MessageEvent": obj(["status", "at"], status=STR, at=TIME, detail=NSTR),
    "Message": obj(["message_id", "to", "status"], message_id=STR, to=STR, kind=STR,
                   message=STR, status=STR, error=NSTR, attempts=INT, in_doubt=BOOL,
                   created_at=TIME, updated_at=TIME, session_id=NSTR,
                   events={"type": "array", "items": ref("MessageEvent")},
                   media=obj(["mime", "size"], mime=STR, size=INT, filename=STR, sha256=STR),
                   location=obj(["latitude", "longitude"], latitude=NUM, longitude=NUM,
                                name=STR, address=STR),
                   link_preview=BOOL),
    "Inbound": obj(["message_id", "from"], message_id=STR, **{"from": STR}, chat=STR, kind=STR,
                   message=STR, is_group=BOOL, received_at=TIME),
    "Webhook": obj(["webhook_id", "url", "events", "status"], webhook_id=STR, url=STR,
                   events={"type": "array", "items": STR}, session_id=NSTR, status=STR,
                   disabled_reason=NSTR, failing_since=TIME, created_at=TIME,
                   previous_secret_valid_until=TIME),
    "Attempt": obj(["at"], at=TIME, status_code={"type": ["integer", "null"]}, latency_ms=NUM,
                   error=NSTR, response=NSTR),
    "Delivery": obj(["delivery_id", "event_id", "type", "status"], delivery_id=INT,
                    event_id=STR, type=STR, status=STR,
                    attempts={"type": "array", "items": ref("Attempt")},
                    next_attempt_at=TIME, created_at=TIME, delivered_at=TIME),
    "ApiKey": obj(["key_id", "name", "scopes"], key_id=STR, name=STR, hint=NSTR,
                  scopes={"type": "array", "items": STR}, primary=BOOL, created_at=TIME,
                  expires_at=TIME, expired=BOOL, last_used_at=TIME, current=BOOL),
    "AuditEntry": obj(["id", "at", "action", "actor"], id=INT, at=TIME, action=STR,
                      target=NSTR, actor={"enum": ["key", "operator", "public"]},
                      key_id=NSTR, key_name=NSTR, ip=NSTR,
                      partner_id={"type": ["integer", "null"]}, detail={"type": "object"}),
    "Partner": obj(["partner_id", "name", "status"], partner_id=INT, name=STR, email=STR,
                   domain=STR, status={"enum": ["active", "pending", "suspended"]},
                   status_reason=NSTR, created_at=TIME, users=INT, devices=INT,
                   limits=obj([], api_rate_per_minute={"type": ["integer", "null"]},
                              send_rate_per_minute={"type": ["integer", "null"]},
                              effective_api_rate_per_minute=INT,
                              effective_send_rate_per_minute=INT)),
    "SendAnswer": obj(["type", "message_id", "status"], type={"const": "success"},
                      message={"enum": ["Message sent", "Message queued"]}, device=STR,
                      message_id=STR, status=STR),
}

ERRORS = {
    400: "Bad JSON or field (named in `field`)",
    401: "Missing, unknown or expired credential",
    403: "The key lacks the operation's scope (`insufficient_permissions`, naming it in "
         "`scope`), or the partner is pending approval (`partner_pending`) or suspended "
         "(`partner_suspended`)",
    404: "Unknown resource, or another partner's",
    409: "The resource is not in a state that allows this",
    413: "Body or media too large (`payload_too_large`, `media_too_large`, with `limit`)",
    422: "Well-formed but invalid (e.g. a phone number, media of the wrong type, a media_url "
         "that cannot be fetched, a recipient without WhatsApp)",
    429: "Rate limited (`rate_limited`): retry after `Retry-After` seconds",
    503: "Cannot be answered now (`check_unavailable`: the on-WhatsApp check needs the device "
         "connected)",
}
RATE_HEADERS = {
    "X-RateLimit-Limit": {"description": "Requests the bucket holds (per minute)",
                          "schema": INT},
    "X-RateLimit-Remaining": {"description": "Requests left in the bucket", "schema": INT},
    "X-RateLimit-Reset": {"description": "Seconds until the bucket is full again",
                          "schema": INT},
}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait", "schema": INT}}


def _json(schema: Schema) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def op(summary: str, tag: str, *, ok: tuple[int, Schema] = (200, ref("Success")),
       auth: tuple[str, ...] = ("apiKey",), body: Schema | None = None,
       query: dict[str, Schema] | None = None, errors: tuple[int, ...] = (401, 404),
       extra: dict[int, tuple[str, Schema]] | None = None, form: bool = False,
       scope: str | None = None, limited: bool = False,
       upload: Schema | None = None) -> dict[str, Any]:
    """One operation. Partner-key operations name their scope (`x-required-scope`, None: any
    valid key) and may answer 403 and 429; `limited` ones (partner keys, send URLs) carry the
    X-RateLimit-* headers on every response."""
    codes = set(errors)
    if "apiKey" in auth:
        codes |= {401, 403, 429}
        limited = True
    if "operatorToken" in auth:
        codes |= {429}
    if body or form:
        codes |= {400, 413}
    responses: dict[str, Any] = {str(ok[0]): {"description": "OK", **_json(ok[1])}}
    for status, (text, schema) in (extra or {}).items():
        responses[str(status)] = {"description": text, **_json(schema)}
    for status in sorted(codes):
        responses.setdefault(str(status), {"description": ERRORS[status], **_json(ref("Error"))})
    if "429" in responses:
        responses["429"]["headers"] = dict(RETRY_AFTER)
    if limited:
        for answer in responses.values():
            answer["headers"] = {**answer.get("headers", {}), **RATE_HEADERS}
    operation: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": responses,
                                 "security": [{name: []} for name in auth] if auth else []}
    if "apiKey" in auth:
        operation["x-required-scope"] = scope
    if auth == ("apiKey", "userToken"):
        operation["security"] = [{"apiKey": [], "userToken": []}]
    if body is not None:
        content: dict[str, Any] = {"application/json": {"schema": body}}
        if form:
            content["application/x-www-form-urlencoded"] = {"schema": body}
        if upload is not None:
            content["multipart/form-data"] = {"schema": upload}
        operation["requestBody"] = {"required": True, "content": content}
    if query:
        operation["parameters"] = [{"name": k, "in": "query", "required": False, "schema": v}
                                   for k, v in query.items()]
    return operation


FLAG: Schema = {"type": ["boolean", "string"]}
COORD: Schema = {"type": ["number", "string"]}
SEND_FIELDS = obj(
    ["to"], to={**STR, "maxLength": 40},
    type={"enum": ["text", "image", "video", "audio", "voice", "document", "location"]},
    message={**STR, "maxLength": 16384, "description": "The text, or the media's caption"},
    caption={**STR, "maxLength": 16384},
    media_url={**STR, "format": "uri", "maxLength": 2048,
               "description": "Fetched by the gateway before it answers; or upload a "
                              "multipart part named `file`"},
    filename={**STR, "maxLength": 255}, latitude=COORD, longitude=COORD,
    name={**STR, "maxLength": 256}, address={**STR, "maxLength": 256},
    link_preview=FLAG, check={**FLAG, "description": "Refuse (422 not_on_whatsapp) a "
                                                     "recipient without WhatsApp"},
    ref={**STR, "maxLength": 255}, **{"async": FLAG})
UPLOAD_FIELDS = {**SEND_FIELDS, "properties": {
    **SEND_FIELDS["properties"], "file": {"type": "string", "format": "binary"}}}
SEND_QUERY = {k: STR for k in ("to", "type", "message", "media_url", "filename", "latitude",
                               "longitude", "name", "address", "link_preview", "check", "ref",
                               "async")}
SEND_ERRORS = (400, 403, 404, 409, 413, 422, 429, 503)
LIST_QUERY = {"limit": {"type": "integer", "minimum": 1, "maximum": 200}}


def _paths(simulated: bool) -> dict[str, dict[str, Any]]:
    dev = "/partner/devices/{session_id}"
    hook = "/partner/webhooks/{webhook_id}"
    sim = "/sim/devices/{session_id}"
    part = "/admin/partners/{partner_id}"
    not_linked = {409: ("Device not linked, or already linked", ref("Error"))}
    bad_status = {409: ("The partner's status does not allow this", ref("Error"))}
    paths: dict[str, dict[str, Any]] = {
        "/healthz": {"get": op("Liveness", "operations", auth=(), errors=(),
                               ok=(200, obj(["status"], status=STR, version=STR, driver=STR)))},
        "/readyz": {"get": op("Readiness: store writable, sessions restored", "operations",
                              auth=(), errors=(), ok=(200, obj(["status"], status=STR)),
                              extra={503: ("Not ready", obj(["status"], status=STR))})},
        "/metrics": {"get": {"summary": "Prometheus metrics", "tags": ["operations"],
                             "security": [], "responses": {"200": {
                                 "description": "OK",
                                 "content": {"text/plain": {"schema": STR}}}}}},
        "/openapi.json": {"get": {"summary": "This document", "tags": ["operations"],
                                  "security": [], "responses": {"200": {
                                      "description": "OK", **_json({"type": "object"})}}}},
        "/docs": {"get": {"summary": "API reference (Swagger UI)", "tags": ["operations"],
                          "security": [], "responses": {"200": {
                              "description": "OK", "content": {"text/html": {"schema": STR}}}}}},
        "/docs/init.js": {"get": {"summary": "Script of the API reference page",
                                  "tags": ["operations"], "security": [], "responses": {"200": {
                                      "description": "OK",
                                      "content": {"text/javascript": {"schema": STR}}}}}},
        "/partner/register": {"post": op(
            "Register a partner; the API key is shown once (security.registration decides "
            "whether it works at once, after approval, or registration is closed)", "partners",
            auth=(), errors=(403, 429),
            body=obj(["name", "email"], name=STR, email=STR, domain=STR),
            ok=(201, {"allOf": [ref("Success"), obj(
                ["api_key", "status"], api_key=STR, status={"enum": ["active", "pending"]},
                message=STR)]}))},
        "/partner/me": {"get": op(
            "Partner profile, counts and the calling key", "partners", scope=None,
            errors=(401,), ok=(200, success(
                name=STR, email=STR, status=STR, stats={"type": "object"},
                key=obj(["key_id", "scopes"], key_id=STR, name=STR,
                        scopes={"type": "array", "items": STR}, expires_at=TIME))))},
        "/partner/keys": {
            "get": op("The partner's API keys (never the keys themselves)", "keys",
                      scope="keys:manage", errors=(401,), ok=(200, success(
                          keys={"type": "array", "items": ref("ApiKey")}, max_keys=INT))),
            "post": op("Create a named, scoped API key; it is shown once", "keys",
                       scope="keys:manage", errors=(401, 409),
                       body=obj(["name"], name={**STR, "maxLength": 100},
                                scopes={"type": "array", "items": {
                                    "enum": ["*", *SCOPE_NAMES]}},
                                expires_at={"type": ["string", "number"]}),
                       ok=(201, success(api_key=STR, key=ref("ApiKey")))),
        },
        "/partner/keys/{key_id}": {"delete": op(
            "Revoke an API key (at once)", "keys", scope="keys:manage",
            errors=(401, 404, 409), ok=(200, success(key_id=STR)))},
        "/partner/audit": {"get": op(
            "The partner's audit log, newest first", "keys", scope="audit:read",
            query={**LIST_QUERY, "cursor": STR}, errors=(400, 401),
            ok=(200, success(entries={"type": "array", "items": ref("AuditEntry")},
                             next_cursor=NSTR)))},
        "/partner/users": {
            "post": op("Create an end user", "users", scope="users:write",
                       body=obj(["label"], label=STR, email=STR), errors=(401,),
                       ok=(201, success(user_token=STR))),
            "get": op("List end users", "users", scope="users:read", errors=(401,),
                      ok=(200, success(users={"type": "array", "items": ref("User")}))),
        },
        "/partner/users/{user_token}/devices": {"get": op(
            "A user's devices with their send URLs", "users", scope="users:read",
            ok=(200, success(devices={"type": "array", "items": ref("Device")})))},
        "/partner/devices": {"post": op(
            "Add a device; pairing starts at once (the token and send URL need messages:send)",
            "devices", scope="devices:write", auth=("apiKey", "userToken"),
            body=obj(["device_name"], device_name=STR),
            ok=(201, success(session_id=STR, device_token=NSTR, send_url=NSTR, qr_url=STR)))},
        dev: {"delete": op("Log out and remove a device; its send URL dies at once", "devices",
                           scope="devices:write")},
        f"{dev}/qr": {"get": op(
            "Current QR code as a PNG data URL, or pending, or connected", "devices",
            scope="devices:read",
            ok=(200, obj(["type"], type={"enum": ["success", "pending", "connected"]},
                         qr=STR, phone=NSTR, message=STR, status=STR)))},
        f"{dev}/status": {"get": op("Device status", "devices", scope="devices:read",
                                    ok=(200, {"allOf": [ref("Success"), ref("Device")]}))},
        f"{dev}/pair": {"post": op(
            "Link by pairing code instead of QR", "devices", scope="devices:write",
            body=obj(["phone"], phone=STR), errors=(401, 404, 409, 422),
            ok=(200, success(pairing_code=STR, phone=STR)))},
        f"{dev}/restart": {"post": op("Restart the device's session", "devices",
                                      scope="devices:write")},
        f"{dev}/logout": {"post": op("Unlink from WhatsApp (keeps the device)", "devices",
                                     scope="devices:write", extra=not_linked)},
        f"{dev}/rotate-token": {"post": op(
            "New send URL; the old one works for sessions.token_grace_seconds", "devices",
            scope="devices:write",
            ok=(200, success(device_token=NSTR, send_url=NSTR, previous_valid_until=TIME)))},
        f"{dev}/link": {
            "post": op("Make an expiring link page for the end user (no partner key in it)",
                       "devices", body=obj([], expires_in=NUM), scope="devices:write",
                       errors=(401, 404), ok=(201, success(link_url=STR, expires_at=TIME))),
            "delete": op("Revoke the device's link pages", "devices", scope="devices:write",
                         ok=(200, success(revoked=INT))),
        },
        f"{dev}/messages": {"get": op(
            "The device's messages, newest first", "messages", scope="messages:read",
            query={"status": STR, "to": STR, "since": STR, "until": STR, "cursor": STR,
                   **LIST_QUERY}, errors=(400, 401, 404, 422),
            ok=(200, success(messages={"type": "array", "items": ref("Message")},
                             next_cursor=NSTR))),
            "post": op(
                "Send a message from this device (the same fields and answers as its send "
                "URL)", "messages", scope="messages:send", body=SEND_FIELDS, form=True,
                upload=UPLOAD_FIELDS, errors=SEND_ERRORS, ok=(200, ref("SendAnswer")),
                extra={202: ("Queued (committed, not yet taken by WhatsApp)",
                             ref("SendAnswer")),
                       502: ("Final failure within the wait", ref("Error"))})},
        f"{dev}/inbound": {"get": op(
            "Inbound messages, newest first", "messages", scope="messages:read",
            query=LIST_QUERY, errors=(400, 401, 404),
            ok=(200, success(messages={"type": "array", "items": ref("Inbound")})))},
        "/partner/messages/{message_id}": {"get": op(
            "A message with its status timeline", "messages", scope="messages:read",
            ok=(200, {"allOf": [ref("Success"), ref("Message")]}))},
        "/wa/{device_token}/send": {m: op(
            "Send a WhatsApp message (the token in the path is the credential)", "send",
            auth=(), body=SEND_FIELDS if m == "post" else None, form=m == "post",
            upload=UPLOAD_FIELDS if m == "post" else None,
            query=None if m == "post" else SEND_QUERY,
            errors=SEND_ERRORS, limited=True,
            ok=(200, ref("SendAnswer")),
            extra={202: ("Queued (committed, not yet taken by WhatsApp)", ref("SendAnswer")),
                   502: ("Final failure within the wait", ref("Error"))})
            for m in ("get", "post")},
        "/wa/{device_token}/messages/{message_id}": {"get": op(
            "Status of a message sent through this send URL", "send", auth=(),
            errors=(403, 404, 429), limited=True,
            ok=(200, {"allOf": [ref("Success"), ref("Message")]}))},
        "/partner/webhooks": {
            "post": op("Add a webhook endpoint; its secret is shown once", "webhooks",
                       scope="webhooks:manage",
                       body=obj(["url"], url=STR, events={"type": "array", "items": STR},
                                session_id=STR), errors=(401, 404, 422),
                       ok=(201, success(webhook=ref("Webhook"), secret=STR))),
            "get": op("List webhook endpoints", "webhooks", scope="webhooks:manage",
                      errors=(401,), ok=(200, success(
                          webhooks={"type": "array", "items": ref("Webhook")}))),
        },
        hook: {"get": op("A webhook endpoint", "webhooks", scope="webhooks:manage",
                         ok=(200, success(webhook=ref("Webhook")))),
               "delete": op("Remove a webhook endpoint", "webhooks", scope="webhooks:manage")},
        f"{hook}/rotate-secret": {"post": op(
            "New signing secret; the old one also signs for webhooks.secret_overlap",
            "webhooks", scope="webhooks:manage",
            ok=(200, success(secret=STR, previous_valid_until=TIME)))},
        f"{hook}/enable": {"post": op("Re-enable a disabled endpoint", "webhooks",
                                      scope="webhooks:manage")},
        f"{hook}/test": {"post": op("Queue a webhook.test event", "webhooks",
                                    scope="webhooks:manage", ok=(202, success(event_id=STR)))},
        f"{hook}/deliveries": {"get": op(
            "Delivery log with every attempt", "webhooks", scope="webhooks:manage",
            query=LIST_QUERY, errors=(400, 401, 404),
            ok=(200, success(deliveries={"type": "array", "items": ref("Delivery")})))},
        f"{hook}/deliveries/{{delivery_id}}/redeliver": {"post": op(
            "Send a delivery again", "webhooks", scope="webhooks:manage",
            ok=(202, success(delivery_id=INT)))},
        "/admin/devices/{session_id}/qr": {"get": op(
            "Raw QR string for the CLI", "operator", auth=("operatorToken",),
            query={"wait": NUM}, errors=(400, 401, 404),
            ok=(200, obj(["type"], type=STR, code=STR, phone=NSTR)))},
        "/admin/sim/devices/{session_id}/scan": {"post": op(
            "Simulated phone scan for the CLI", "operator", auth=("operatorToken",),
            body=obj(["phone"], phone=STR), errors=(401, 404, 409, 422),
            ok=(200, success(jid=STR)))},
        "/admin/partners": {
            "get": op("Every partner with status, counts and limits", "operator",
                      auth=("operatorToken",), query={"status": STR}, errors=(400, 401),
                      ok=(200, success(partners={"type": "array", "items": ref("Partner")}))),
            "post": op("Create a partner (active); its API key is shown once", "operator",
                       auth=("operatorToken",), errors=(401,),
                       body=obj(["name", "email"], name=STR, email=STR, domain=STR),
                       ok=(201, success(partner=ref("Partner"), api_key=STR))),
        },
        part: {"get": op("A partner", "operator", auth=("operatorToken",),
                         ok=(200, success(partner=ref("Partner"))))},
        f"{part}/approve": {"post": op(
            "pending -> active: the partner's keys start working", "operator",
            auth=("operatorToken",), extra=bad_status,
            ok=(200, success(partner=ref("Partner"))))},
        f"{part}/suspend": {"post": op(
            "-> suspended: 403 partner_suspended on every partner route and send URL, its "
            "queued messages are held", "operator", auth=("operatorToken",), extra=bad_status,
            body=obj([], reason={**STR, "maxLength": 500}),
            ok=(200, success(partner=ref("Partner"))))},
        f"{part}/resume": {"post": op(
            "suspended -> active", "operator", auth=("operatorToken",), extra=bad_status,
            ok=(200, success(partner=ref("Partner"))))},
        f"{part}/limits": {"post": op(
            "Per-partner rate limits (null: the configured default, 0: unlimited)", "operator",
            auth=("operatorToken",), errors=(401, 404),
            body=obj([], api_rate_per_minute={"type": ["integer", "null"]},
                     send_rate_per_minute={"type": ["integer", "null"]}),
            ok=(200, success(partner=ref("Partner"))))},
        "/admin/audit": {"get": op(
            "The audit log of every partner, newest first", "operator",
            auth=("operatorToken",), query={**LIST_QUERY, "cursor": STR, "partner_id": STR},
            errors=(400, 401),
            ok=(200, success(entries={"type": "array", "items": ref("AuditEntry")},
                             next_cursor=NSTR)))},
    }
    if simulated:
        paths.update({
            sim: {"get": op("Simulated WhatsApp state of a device", "simulator",
                            scope="devices:read",
                            ok=(200, success(session=STR, linked=BOOL, qr=NSTR)))},
            f"{sim}/scan": {"post": op("The phone scans the QR (or enters the pairing code)",
                                       "simulator", body=obj(["phone"], phone=STR, code=STR),
                                       scope="devices:write", errors=(401, 404, 409, 422),
                                       ok=(200, success(jid=STR)))},
            f"{sim}/inbound": {"post": op("A message arrives from a contact", "simulator",
                                          scope="devices:write",
                                          body=obj(["from", "message"], **{"from": STR},
                                                   message=STR), errors=(401, 404, 409, 422),
                                          ok=(200, success(message_id=STR)))},
            f"{sim}/sent": {"get": op("What the simulated WhatsApp received", "simulator",
                                      scope="devices:read", query={"limit": INT},
                                      errors=(400, 401, 404),
                                      ok=(200, success(messages={"type": "array"})))},
            f"{sim}/unlink": {"post": op("The phone removes the linked device", "simulator",
                                         scope="devices:write")},
            f"{sim}/ban": {"post": op("WhatsApp bans the number for a while", "simulator",
                                      scope="devices:write", errors=(400, 401, 404, 409))},
            f"{sim}/drop": {"post": op("The connection drops", "simulator",
                                       scope="devices:write", errors=(401, 404, 409))},
            f"{sim}/faults": {"post": op(
                "Per-device failure injection", "simulator", scope="devices:write",
                body=obj([], connect_failure_rate=NUM, send_failure_rate=NUM, send_delay=NUM),
                errors=(400, 401, 404))},
        })
    for path, item in paths.items():
        names = [p.strip("{}") for p in path.split("/") if p.startswith("{")]
        if names:
            item["parameters"] = [{"name": n, "in": "path", "required": True, "schema": STR}
                                  for n in names]
    return paths


PAGE_PREFIXES = ("/console", "/link/")
PAGE_MEDIA = {"/events": "text/event-stream", "qr.png": "image/png", "/state": "application/json"}
# A page answers its errors as an HTML page, its scripts' routes in the JSON error envelope.
_PAGE_ERROR = {"text/html": {"schema": STR}, "application/json": {"schema": ref("Error")}}
PAGE_ERRORS: dict[str, Any] = {
    str(status): {"description": text, "content": _PAGE_ERROR} for status, text in (
        (400, "Bad form or JSON input"),
        (401, "Not signed in, or a wrong API key or operator token"),
        (403, "A stale form (CSRF), or the partner may not use the console"),
        (404, "Unknown, expired or revoked"), (409, "Not possible in the device's state"),
        (422, "Not a phone number"),
        (429, "Too many requests from this address (see Retry-After)"))}


def page_paths(routes: list[Any]) -> dict[str, Any]:
    """The browser pages (console, link page), described from the route table itself: they are
    HTML for people, so their entry says what they are, not a schema."""
    paths: dict[str, Any] = {}
    for route in routes:
        path = getattr(route, "path", "")
        if not path.startswith(PAGE_PREFIXES) or not getattr(route, "methods", None):
            continue
        media = next((m for suffix, m in PAGE_MEDIA.items() if path.endswith(suffix)),
                     "text/html")
        doc = (route.endpoint.__doc__ or route.name or path).strip().splitlines()[0]
        item = paths.setdefault(path, {})
        for method in route.methods:
            if method == "HEAD":
                continue
            item[method.lower()] = {
                "summary": doc, "tags": ["console" if path.startswith("/console") else "link page"],
                "security": [], "responses": {
                    "200": {"description": "OK", "content": {media: {"schema": STR}}},
                    "303": {"description": "Redirect after a form post or to sign in"},
                    **PAGE_ERRORS}}
        names = [p.strip("{}") for p in path.split("/") if p.startswith("{")]
        if names:
            item["parameters"] = [{"name": n, "in": "path", "required": True, "schema": STR}
                                  for n in names]
    return paths


def document(simulated: bool, server_url: str, extra_paths: dict[str, Any] | None = None,
             ) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "wagate", "version": __version__,
                 "description": "Self-hosted WhatsApp device gateway: partners, end users, "
                                "linked devices and a send URL per device."},
        "servers": [{"url": server_url}],
        "paths": {**_paths(simulated), **(extra_paths or {})},
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key",
                           "description": "A partner API key. Each operation names the scope "
                                          "its key needs in `x-required-scope` (null: any "
                                          "key); scopes: " + ", ".join(SCOPE_NAMES) + "."},
                "userToken": {"type": "apiKey", "in": "header", "name": "x-user-token"},
                "operatorToken": {"type": "apiKey", "in": "header", "name": "x-operator-token"},
            },
        },
    }
