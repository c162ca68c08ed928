"""The OpenAPI 3.1 description of every route, kept in step with the app by a test.

Written as data next to the code rather than generated from handlers: Starlette handlers carry no
schemas, and one table is easier to review than decorators spread over every module.
"""

from __future__ import annotations

from typing import Any

from gateway import __version__

Schema = dict[str, Any]

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
                 field=STR, status=STR, message_id=STR),
    "Success": obj(["type"], type={"const": "success"}),
    "Device": obj(["session_id", "device_name", "status", "send_url", "qr_url"],
                  session_id=STR, device_name=STR, status=STR, phone=NSTR, since=TIME,
                  last_error=NSTR, send_url=STR, qr_url=STR, created_at=TIME),
    "User": obj(["user_token", "label"], user_token=STR, label=STR, email=STR, devices=INT,
                created_at=TIME),
    "MessageEvent": obj(["status", "at"], status=STR, at=TIME, detail=NSTR),
    "Message": obj(["message_id", "to", "status"], message_id=STR, to=STR, kind=STR,
                   message=STR, status=STR, error=NSTR, attempts=INT, in_doubt=BOOL,
                   created_at=TIME, updated_at=TIME, session_id=NSTR,
                   events={"type": "array", "items": ref("MessageEvent")}),
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
    "SendAnswer": obj(["type", "message_id", "status"], type={"const": "success"},
                      message={"enum": ["Message sent", "Message queued"]}, device=STR,
                      message_id=STR, status=STR),
}

ERRORS = {
    400: "Bad JSON or field (named in `field`)",
    401: "Missing or unknown credential",
    404: "Unknown resource, or another partner's",
    409: "The resource is not in a state that allows this",
    413: "Body too large",
    422: "Well-formed but invalid (e.g. a phone number)",
}


def _json(schema: Schema) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def op(summary: str, tag: str, *, ok: tuple[int, Schema] = (200, ref("Success")),
       auth: tuple[str, ...] = ("apiKey",), body: Schema | None = None,
       query: dict[str, Schema] | None = None, errors: tuple[int, ...] = (401, 404),
       extra: dict[int, tuple[str, Schema]] | None = None, form: bool = False) -> dict[str, Any]:
    responses: dict[str, Any] = {str(ok[0]): {"description": "OK", **_json(ok[1])}}
    for status, (text, schema) in (extra or {}).items():
        responses[str(status)] = {"description": text, **_json(schema)}
    for status in sorted({400, 413, *errors} if body or form else set(errors)):
        responses.setdefault(str(status), {"description": ERRORS[status], **_json(ref("Error"))})
    operation: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": responses,
                                 "security": [{name: []} for name in auth] if auth else []}
    if auth == ("apiKey", "userToken"):
        operation["security"] = [{"apiKey": [], "userToken": []}]
    if body is not None:
        content: dict[str, Any] = {"application/json": {"schema": body}}
        if form:
            content["application/x-www-form-urlencoded"] = {"schema": body}
        operation["requestBody"] = {"required": True, "content": content}
    if query:
        operation["parameters"] = [{"name": k, "in": "query", "required": False, "schema": v}
                                   for k, v in query.items()]
    return operation


SEND_FIELDS = obj(["to", "message"], to={**STR, "maxLength": 40},
                  message={**STR, "maxLength": 16384}, ref={**STR, "maxLength": 255},
                  **{"async": {"type": ["boolean", "string"]}})
LIST_QUERY = {"limit": {"type": "integer", "minimum": 1, "maximum": 200}}


def _paths(simulated: bool) -> dict[str, dict[str, Any]]:
    dev = "/partner/devices/{session_id}"
    hook = "/partner/webhooks/{webhook_id}"
    sim = "/sim/devices/{session_id}"
    not_linked = {409: ("Device not linked, or already linked", ref("Error"))}
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
            "Register a partner; the API key is shown once", "partners", auth=(), errors=(),
            body=obj(["name", "email"], name=STR, email=STR, domain=STR),
            ok=(201, success(api_key=STR)))},
        "/partner/me": {"get": op("Partner profile and counts", "partners", errors=(401,),
                                  ok=(200, success(name=STR, email=STR, stats={
                                      "type": "object"})))},
        "/partner/users": {
            "post": op("Create an end user", "users", body=obj(["label"], label=STR, email=STR),
                       errors=(401,), ok=(201, success(user_token=STR))),
            "get": op("List end users", "users", errors=(401,), ok=(200, success(
                users={"type": "array", "items": ref("User")}))),
        },
        "/partner/users/{user_token}/devices": {"get": op(
            "A user's devices with their send URLs", "users",
            ok=(200, success(devices={"type": "array", "items": ref("Device")})))},
        "/partner/devices": {"post": op(
            "Add a device; pairing starts at once", "devices", auth=("apiKey", "userToken"),
            body=obj(["device_name"], device_name=STR),
            ok=(201, success(session_id=STR, device_token=STR, send_url=STR, qr_url=STR)))},
        dev: {"delete": op("Log out and remove a device; its send URL dies at once", "devices")},
        f"{dev}/qr": {"get": op(
            "Current QR code as a PNG data URL, or pending, or connected", "devices",
            ok=(200, obj(["type"], type={"enum": ["success", "pending", "connected"]},
                         qr=STR, phone=NSTR, message=STR, status=STR)))},
        f"{dev}/status": {"get": op("Device status", "devices",
                                    ok=(200, {"allOf": [ref("Success"), ref("Device")]}))},
        f"{dev}/pair": {"post": op(
            "Link by pairing code instead of QR", "devices",
            body=obj(["phone"], phone=STR), errors=(401, 404, 409, 422),
            ok=(200, success(pairing_code=STR, phone=STR)))},
        f"{dev}/restart": {"post": op("Restart the device's session", "devices")},
        f"{dev}/logout": {"post": op("Unlink from WhatsApp (keeps the device)", "devices",
                                     extra=not_linked)},
        f"{dev}/rotate-token": {"post": op(
            "New send URL; the old one works for sessions.token_grace_seconds", "devices",
            ok=(200, success(device_token=STR, send_url=STR, previous_valid_until=TIME)))},
        f"{dev}/link": {
            "post": op("Make an expiring link page for the end user (no partner key in it)",
                       "devices", body=obj([], expires_in=NUM), errors=(401, 404),
                       ok=(201, success(link_url=STR, expires_at=TIME))),
            "delete": op("Revoke the device's link pages", "devices",
                         ok=(200, success(revoked=INT))),
        },
        f"{dev}/messages": {"get": op(
            "The device's messages, newest first", "messages",
            query={"status": STR, "to": STR, "since": STR, "until": STR, "cursor": STR,
                   **LIST_QUERY}, errors=(400, 401, 404),
            ok=(200, success(messages={"type": "array", "items": ref("Message")},
                             next_cursor=NSTR)))},
        f"{dev}/inbound": {"get": op(
            "Inbound messages, newest first", "messages", query=LIST_QUERY,
            errors=(400, 401, 404),
            ok=(200, success(messages={"type": "array", "items": ref("Inbound")})))},
        "/partner/messages/{message_id}": {"get": op(
            "A message with its status timeline", "messages",
            ok=(200, {"allOf": [ref("Success"), ref("Message")]}))},
        "/wa/{device_token}/send": {m: op(
            "Send a WhatsApp message (the token in the path is the credential)", "send",
            auth=(), body=SEND_FIELDS if m == "post" else None, form=m == "post",
            query=None if m == "post" else {"to": STR, "message": STR, "ref": STR,
                                            "async": STR},
            errors=(400, 404, 409, 422),
            ok=(200, ref("SendAnswer")),
            extra={202: ("Queued (committed, not yet taken by WhatsApp)", ref("SendAnswer")),
                   502: ("Final failure within the wait", ref("Error"))})
            for m in ("get", "post")},
        "/wa/{device_token}/messages/{message_id}": {"get": op(
            "Status of a message sent through this send URL", "send", auth=(), errors=(404,),
            ok=(200, {"allOf": [ref("Success"), ref("Message")]}))},
        "/partner/webhooks": {
            "post": op("Add a webhook endpoint; its secret is shown once", "webhooks",
                       body=obj(["url"], url=STR, events={"type": "array", "items": STR},
                                session_id=STR), errors=(401, 404, 422),
                       ok=(201, success(webhook=ref("Webhook"), secret=STR))),
            "get": op("List webhook endpoints", "webhooks", errors=(401,), ok=(200, success(
                webhooks={"type": "array", "items": ref("Webhook")}))),
        },
        hook: {"get": op("A webhook endpoint", "webhooks",
                         ok=(200, success(webhook=ref("Webhook")))),
               "delete": op("Remove a webhook endpoint", "webhooks")},
        f"{hook}/rotate-secret": {"post": op(
            "New signing secret; the old one also signs for webhooks.secret_overlap",
            "webhooks", ok=(200, success(secret=STR, previous_valid_until=TIME)))},
        f"{hook}/enable": {"post": op("Re-enable a disabled endpoint", "webhooks")},
        f"{hook}/test": {"post": op("Queue a webhook.test event", "webhooks",
                                    ok=(202, success(event_id=STR)))},
        f"{hook}/deliveries": {"get": op(
            "Delivery log with every attempt", "webhooks", query=LIST_QUERY,
            errors=(400, 401, 404),
            ok=(200, success(deliveries={"type": "array", "items": ref("Delivery")})))},
        f"{hook}/deliveries/{{delivery_id}}/redeliver": {"post": op(
            "Send a delivery again", "webhooks", ok=(202, success(delivery_id=INT)))},
        "/admin/devices/{session_id}/qr": {"get": op(
            "Raw QR string for the CLI", "operator", auth=("operatorToken",),
            query={"wait": NUM}, errors=(400, 401, 404),
            ok=(200, obj(["type"], type=STR, code=STR, phone=NSTR)))},
        "/admin/sim/devices/{session_id}/scan": {"post": op(
            "Simulated phone scan for the CLI", "operator", auth=("operatorToken",),
            body=obj(["phone"], phone=STR), errors=(401, 404, 409, 422),
            ok=(200, success(jid=STR)))},
    }
    if simulated:
        paths.update({
            sim: {"get": op("Simulated WhatsApp state of a device", "simulator",
                            ok=(200, success(session=STR, linked=BOOL, qr=NSTR)))},
            f"{sim}/scan": {"post": op("The phone scans the QR (or enters the pairing code)",
                                       "simulator", body=obj(["phone"], phone=STR, code=STR),
                                       errors=(401, 404, 409, 422),
                                       ok=(200, success(jid=STR)))},
            f"{sim}/inbound": {"post": op("A message arrives from a contact", "simulator",
                                          body=obj(["from", "message"], **{"from": STR},
                                                   message=STR), errors=(401, 404, 409, 422),
                                          ok=(200, success(message_id=STR)))},
            f"{sim}/sent": {"get": op("What the simulated WhatsApp received", "simulator",
                                      query={"limit": INT}, errors=(400, 401, 404),
                                      ok=(200, success(messages={"type": "array"})))},
            f"{sim}/unlink": {"post": op("The phone removes the linked device", "simulator")},
            f"{sim}/ban": {"post": op("WhatsApp bans the number for a while", "simulator",
                                      errors=(400, 401, 404, 409))},
            f"{sim}/drop": {"post": op("The connection drops", "simulator",
                                       errors=(401, 404, 409))},
            f"{sim}/faults": {"post": op(
                "Per-device failure injection", "simulator",
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
                    "404": {"description": "Unknown, expired or revoked",
                            "content": {"text/html": {"schema": STR}}}}}
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
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
                "userToken": {"type": "apiKey", "in": "header", "name": "x-user-token"},
                "operatorToken": {"type": "apiKey", "in": "header", "name": "x-operator-token"},
            },
        },
    }
