"""Reading request input: JSON bodies, form bodies and query strings, with field checks."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.datastructures import UploadFile
from starlette.requests import Request

from gateway.errors import BadRequest

MAX_FIELD = 4096
MAX_JSON_DEPTH = 32  # nesting of arrays and objects in a body; no route needs more than 3


def _too_deep(raw: bytes, data: Any) -> bool:
    if raw.count(b"[") + raw.count(b"{") <= MAX_JSON_DEPTH:
        return False  # cannot nest that deep (counting brackets is cheap; walking is not)
    level = [(data, 1)]
    while level:
        value, depth = level.pop()
        if depth > MAX_JSON_DEPTH:
            return True
        children = value.values() if isinstance(value, dict) else value \
            if isinstance(value, list) else ()
        level.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


async def json_body(request: Request, *, required: bool = True) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        if required:
            raise BadRequest("request body must be a JSON object", code="invalid_json")
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc.msg}",
                         code="invalid_json") from None
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object", code="invalid_json")
    if _too_deep(raw, data):
        raise BadRequest(f"request body nests deeper than {MAX_JSON_DEPTH} levels",
                         code="invalid_json")
    return data


async def any_params(request: Request) -> dict[str, Any]:
    """Query string, overlaid by a JSON or form body (for send URLs that LAN devices call)."""
    params: dict[str, Any] = dict(request.query_params) if request.scope["query_string"] else {}
    if request.method in ("POST", "PUT", "PATCH"):
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "application/x-www-form-urlencoded" and (await request.body()).lstrip() \
                .startswith(b"{"):
            # `curl -d '{"to":…}'` without a JSON content type: the body says what it is.
            params.update(await json_body(request))
        elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.form(max_files=0, max_fields=100)
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
        else:
            raw = await request.body()
            if raw.strip():
                if ctype not in ("application/json", "") and not ctype.endswith("+json") \
                        and not raw.lstrip().startswith(b"{"):
                    raise BadRequest(f"unsupported content type {ctype!r}; send JSON, a form "
                                     "or a query string", code="unsupported_media_type")
                params.update(await json_body(request))
    return params


async def send_params(request: Request) -> tuple[dict[str, Any], UploadFile | None]:
    """`any_params`, plus at most one uploaded file (a multipart part named `file`)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if request.method != "POST" or ctype != "multipart/form-data":
        return await any_params(request), None
    params: dict[str, Any] = dict(request.query_params) if request.scope["query_string"] else {}
    form = await request.form(max_files=1, max_fields=100)
    upload: UploadFile | None = None
    for name, value in form.multi_items():
        if isinstance(value, str):
            params[name] = value
        elif name in ("file", "media"):
            upload = value
        else:
            raise BadRequest(f"{name}: unexpected file part; name it 'file'",
                             code="invalid_field", field=name)
    return params, upload


def text_field(data: dict[str, Any], name: str, *, required: bool = True, max_len: int = MAX_FIELD,
               default: str = "") -> str:
    value = data.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise BadRequest(f"{name}: required", code="missing_field", field=name)
        return default
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise BadRequest(f"{name}: must be a string", code="invalid_field", field=name)
    if len(value) > max_len:
        raise BadRequest(f"{name}: longer than {max_len} characters", code="invalid_field",
                         field=name)
    return value.strip()


def email_field(data: dict[str, Any], name: str = "email", *, required: bool = True) -> str:
    value = text_field(data, name, required=required, max_len=254)
    if value and ("@" not in value or value.startswith("@") or value.endswith("@")
                  or any(c.isspace() for c in value)):
        raise BadRequest(f"{name}: not an email address", code="invalid_field", field=name)
    return value
