"""The WebSocket protocol's messages (CONTRACT.md §4): parse what clients send, build what we send.

Parsing never raises for client input: a bad frame becomes an `ErrorReply` the session sends back
while the socket stays open.
"""

from __future__ import annotations

from typing import Any

import attrs
import orjson

from ..clock import rfc3339, rfc3339_from_epoch

MAX_SEQ = 2**53  # the largest integer every JSON client (Swift's Double too) reads exactly


@attrs.frozen
class ClientPing:
    pass


@attrs.frozen
class ClientPong:
    pass


@attrs.frozen
class ClientAck:
    seq: int


@attrs.frozen
class ClientResume:
    last_seq: int


@attrs.frozen
class ClientRefresh:
    token: str = attrs.field(repr=False)  # never in a log line


@attrs.frozen
class ErrorReply:
    # invalid_json | invalid_message | unknown_type | invalid_token | token_user_mismatch
    code: str
    message: str


ClientMessage = ClientPing | ClientPong | ClientAck | ClientResume | ClientRefresh

MAX_TOKEN_CHARS = 8192  # far above any JWT the server issues; the frame limit bounds it anyway

_PING = ClientPing()
_PONG = ClientPong()


def _seq_field(payload: dict[str, Any], name: str) -> int | ErrorReply:
    value = payload.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEQ:
        return ErrorReply("invalid_message", f"{name} must be an integer from 0 to 2^53")
    return value


def parse_client_message(text: str) -> ClientMessage | ErrorReply:
    """Turn one inbound text frame into a message, or the error frame to answer it with."""
    try:
        payload = orjson.loads(text)
    except orjson.JSONDecodeError:
        return ErrorReply("invalid_json", "the frame is not valid JSON")
    if not isinstance(payload, dict):
        return ErrorReply("invalid_message", "a message must be a JSON object")
    kind = payload.get("type")
    if not isinstance(kind, str):
        return ErrorReply("invalid_message", "a message needs a string field 'type'")
    if kind == "ping":
        return _PING
    if kind == "pong":
        return _PONG
    if kind == "ack":
        seq = _seq_field(payload, "seq")
        return seq if isinstance(seq, ErrorReply) else ClientAck(seq)
    if kind == "resume":
        last_seq = _seq_field(payload, "last_seq")
        return last_seq if isinstance(last_seq, ErrorReply) else ClientResume(last_seq)
    if kind == "refresh":
        token = payload.get("token")
        if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_CHARS:
            return ErrorReply("invalid_message", "refresh needs a string field 'token'")
        return ClientRefresh(token)
    return ErrorReply("unknown_type", f"unknown message type {kind[:64]!r}")


def dumps(payload: dict[str, Any]) -> str:
    return orjson.dumps(payload).decode()


def welcome_frame(
    connection_id: str, user_id: str, ping_interval: float, idle_timeout: float, last_seq: int
) -> str:
    return dumps(
        {
            "type": "welcome",
            "connection_id": connection_id,
            "user_id": user_id,
            "ping_interval": float(ping_interval),
            "idle_timeout": float(idle_timeout),
            "last_seq": last_seq,
        }
    )


def ping_frame() -> str:
    return '{"type":"ping","ts":"' + rfc3339() + '"}'


def pong_frame() -> str:
    return '{"type":"pong","ts":"' + rfc3339() + '"}'


def error_frame(error: ErrorReply) -> str:
    return dumps({"type": "error", "code": error.code, "message": error.message})


def refreshed_frame(expires_at: float) -> str:
    return dumps({"type": "refreshed", "expires_at": rfc3339_from_epoch(expires_at)})


def token_expiring_frame(expires_at: float) -> str:
    return dumps({"type": "token_expiring", "expires_at": rfc3339_from_epoch(expires_at)})


def resumed_frame(replayed: int, complete: bool) -> str:
    return dumps({"type": "resumed", "replayed": replayed, "complete": complete})
