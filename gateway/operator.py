"""The operator's credential: derived from the server secret, so only whoever can read the data
directory (the CLI on the host, the operator) can compute it; nothing of it is in the database."""

from __future__ import annotations

import hmac

from starlette.requests import Request

from gateway.errors import Unauthorized
from gateway.security.guard import check_blocked, lookup_failed
from gateway.tokens import TokenVault

OPERATOR_HEADER = "x-operator-token"


def operator_token(vault: TokenVault) -> str:
    return vault.derive("op", "operator")


def require_operator(request: Request) -> None:
    given = request.headers.get(OPERATOR_HEADER, "")
    if given:
        check_blocked(request)
    expected = operator_token(request.app.state.services.vault)
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        if given:
            lookup_failed(request)
        raise Unauthorized("operator token required", code="invalid_operator_token")
    request.state.operator = True
