"""What every REST handler shares: JSON responses, the contract's error shape, bearer auth."""

from __future__ import annotations

from typing import Any

import orjson
from quart import Response, request

from ..auth import AuthError, Identity, TokenVerifier


class ApiError(Exception):
    """Raised anywhere in a handler; rendered as {"error": {"code", "message"}} with `status`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status=status, content_type="application/json")


def error_response(status: int, code: str, message: str) -> Response:
    return json_response({"error": {"code": code, "message": message}}, status)


def authenticate(verifier: TokenVerifier) -> Identity:
    """The caller's identity from `Authorization: Bearer`, or a 401 ApiError."""
    header = request.headers.get("Authorization")
    token = None
    if header:
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() == "bearer":
            token = credentials.strip()
    try:
        return verifier.verify(token)
    except AuthError as error:
        raise ApiError(401, "unauthorized", error.message) from None
