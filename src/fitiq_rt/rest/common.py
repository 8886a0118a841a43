"""What every REST handler shares: JSON responses, the contract's error shape, bearer auth, the
JSON body reader. A store outage needs no handling in a route: the app answers StoreUnavailable
with the contract's 503 (app.py)."""

from __future__ import annotations

from typing import Any

import orjson
from quart import Response, request

from ..auth import AuthError, Identity, TokenVerifier
from .schemas import MAX_BODY_BYTES


class ApiError(Exception):
    """Raised anywhere in a handler; rendered as {"error": {"code", "message"}} with `status`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def invalid(message: str) -> ApiError:
    """A 422 naming what is wrong with the request."""
    return ApiError(422, "validation_error", message)


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


async def read_json_object() -> dict[str, Any]:
    """The request body as a JSON object: 413 over 64 KiB, 400 not JSON, 422 not an object."""
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        raise ApiError(413, "payload_too_large", "the body is larger than 64 KiB")
    body = await request.get_data(cache=False)
    assert isinstance(body, bytes)
    if len(body) > MAX_BODY_BYTES:
        raise ApiError(413, "payload_too_large", "the body is larger than 64 KiB")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise invalid("the body must be a JSON object")
    return payload
