"""Every way the server ends a socket, in one table: close code, log reason, reason text, advice.

The session picks a rule, the transport puts `code` and `text` in the close frame, the
`ws.disconnected` line carries `reason` and `code`, and docs/asyncapi.yaml lists the same rows
(tests/integration/test_api_descriptions.py compares them), so a client author reads exactly what
the server does. Codes are CONTRACT.md §4's; RFC 6455 §7.4.1 names the 1xxx ones.
"""

from __future__ import annotations

import attrs


@attrs.frozen
class CloseRule:
    code: int
    reason: str  # the `ws.disconnected` reason (CONTRACT.md §5)
    text: str  # the close frame's reason text (at most 123 bytes of UTF-8)
    meaning: str
    client: str  # what a client should do next


CLIENT_CLOSED = CloseRule(
    1000,
    "client_closed",
    "",
    "The client closed; the server echoes its code (logged as sent, 1005 when it sent none).",
    "Nothing to do.",
)
SERVER_SHUTDOWN = CloseRule(
    1001,
    "server_shutdown",
    "server shutting down",
    "The server is shutting down.",
    "Reconnect with backoff and `last_seq`.",
)
PROTOCOL_ERROR = CloseRule(
    1002,
    "protocol_error",
    "protocol error",
    "A frame broke RFC 6455 (reserved bits or opcode, an unmasked frame, a control frame that "
    "is fragmented or over 125 bytes, a stray or missing continuation, a malformed close).",
    "A client bug; do not retry blindly.",
)
UNSUPPORTED_DATA = CloseRule(
    1003,
    "protocol_error",
    "binary messages are not accepted",
    "The client sent a binary message; the protocol is JSON text only.",
    "A client bug; do not retry blindly.",
)
INVALID_DATA = CloseRule(
    1007,
    "protocol_error",
    "invalid UTF-8",
    "A text message or close reason that is not valid UTF-8.",
    "A client bug; do not retry blindly.",
)
POLICY_VIOLATION = CloseRule(
    1008,
    "policy_violation",
    "too many messages",
    "More inbound frames than FITIQ_MAX_MESSAGES_PER_SECOND (burst 2x).",
    "A client bug; slow down before reconnecting.",
)
MESSAGE_TOO_BIG = CloseRule(
    1009,
    "protocol_error",
    "message too big",
    "A message larger than FITIQ_MAX_MESSAGE_BYTES.",
    "A client bug; do not retry blindly.",
)
INTERNAL_ERROR = CloseRule(
    1011,
    "error",
    "internal error",
    "A server bug ended the session.",
    "Reconnect with backoff and `last_seq`.",
)
TOKEN_EXPIRED = CloseRule(
    4001,
    "token_expired",
    "token expired",
    "The token's `exp` passed while connected; a socket never outlives its token.",
    "Get a new token, then reconnect with `last_seq`.",
)
IDLE_TIMEOUT = CloseRule(
    4008,
    "idle_timeout",
    "idle timeout",
    "Nothing received from the client for `idle_timeout` seconds.",
    "Reconnect with `last_seq`; send JSON pings every `ping_interval`.",
)
SLOW_CONSUMER = CloseRule(
    4029,
    "slow_consumer",
    "slow consumer",
    "The client stopped reading: its send queue (FITIQ_SEND_QUEUE) stayed full, or one send "
    "made no progress for FITIQ_WRITE_TIMEOUT seconds.",
    "Reconnect with `last_seq`; nothing is lost.",
)

RULES: tuple[CloseRule, ...] = (
    CLIENT_CLOSED,
    SERVER_SHUTDOWN,
    PROTOCOL_ERROR,
    UNSUPPORTED_DATA,
    INVALID_DATA,
    POLICY_VIOLATION,
    MESSAGE_TOO_BIG,
    INTERNAL_ERROR,
    TOKEN_EXPIRED,
    IDLE_TIMEOUT,
    SLOW_CONSUMER,
)

_BY_PROTOCOL_CODE = {rule.code: rule for rule in (PROTOCOL_ERROR, INVALID_DATA, MESSAGE_TOO_BIG)}


def for_protocol_failure(code: int) -> CloseRule:
    """The rule for a close the WebSocket library decided (1002, 1007, 1009; else 1011)."""
    return _BY_PROTOCOL_CODE.get(code, INTERNAL_ERROR)


NO_STATUS_RECEIVED = 1005  # RFC 6455 §7.1.5: the client's close frame carried no code
ABNORMAL_CLOSURE = 1006  # never sent: TCP ended without a closing handshake
