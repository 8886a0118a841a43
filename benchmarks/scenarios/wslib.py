"""wslib: the server-side sans-I/O cost of one churn session in `websockets` and in wsproto.

No network and no server: the client's bytes (a handshake, a masked JSON ping, a close) are made
once, then each library's server side is driven through the churn session of the other
scenarios: parse the upgrade and answer 101, send the welcome, receive the ping and send the
pong, receive the close and answer it. What it isolates is the library cost per session and per
frame, the part of the transport that the choice between the two changes.
"""

from __future__ import annotations

import argparse
import base64
import gc
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from ..argtypes import positive_int

NAME = "wslib"
WELCOME = (
    b'{"type":"welcome","connection_id":"0123456789abcdef0123456789abcdef","user_id":"bench",'
    b'"ping_interval":30.0,"idle_timeout":90.0,"last_seq":0}'
)
PONG = b'{"type":"pong","ts":"2026-12-01T15:00:00.000Z"}'


def add_arguments(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    p = f"--{prefix}"
    parser.add_argument(f"{p}sessions", type=positive_int, default=20000, help="sessions per round")
    parser.add_argument(
        f"{p}rounds", type=positive_int, default=5, help="rounds (median is reported)"
    )


def params_from(args: argparse.Namespace, prefix: str = "") -> dict[str, Any]:
    p = prefix.replace("-", "_")
    return {"sessions": getattr(args, f"{p}sessions"), "rounds": getattr(args, f"{p}rounds")}


def _client_bytes() -> tuple[bytes, bytes, bytes]:
    """A client's handshake, a masked text frame and a masked close frame (1000)."""
    from websockets.frames import Close, Frame, Opcode

    key = base64.b64encode(os.urandom(16)).decode()
    handshake = (
        "GET /ws/meal-logs?token=x HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    ping = Frame(Opcode.TEXT, b'{"type":"ping"}').serialize(mask=True, extensions=[])
    close = Frame(Opcode.CLOSE, Close(1000, "").serialize()).serialize(mask=True, extensions=[])
    return handshake, ping, close


def websockets_session(handshake: bytes, ping: bytes, close: bytes) -> None:
    from websockets.http11 import Request
    from websockets.server import ServerProtocol

    protocol = ServerProtocol(max_size=65536, logger=_QUIET)
    protocol.receive_data(handshake)
    request = protocol.events_received()[0]
    assert isinstance(request, Request)
    protocol.send_response(protocol.accept(request))
    protocol.send_text(WELCOME)
    b"".join(protocol.data_to_send())
    protocol.receive_data(ping)
    (frame,) = protocol.events_received()
    frame.data.decode()
    protocol.send_text(PONG)
    b"".join(protocol.data_to_send())
    protocol.receive_data(close)
    protocol.events_received()
    b"".join(protocol.data_to_send())


def wsproto_session(handshake: bytes, ping: bytes, close: bytes) -> None:
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import AcceptConnection, CloseConnection, Message, Request, TextMessage

    conn = WSConnection(ConnectionType.SERVER)
    conn.receive_data(handshake)
    request = next(conn.events())
    assert isinstance(request, Request)
    out = conn.send(AcceptConnection())
    out += conn.send(TextMessage(WELCOME.decode()))
    conn.receive_data(ping)
    (message,) = conn.events()
    assert isinstance(message, Message)
    out += conn.send(TextMessage(PONG.decode()))
    conn.receive_data(close)
    (closing,) = conn.events()
    assert isinstance(closing, CloseConnection)
    out += conn.send(closing.response())


class _Quiet:
    """A logger that is never enabled: websockets logs every open and close at info."""

    def isEnabledFor(self, _level: int) -> bool:
        return False

    def info(self, *_args: Any, **_kwargs: Any) -> None:
        pass

    debug = error = warning = info


_QUIET: Any = _Quiet()

LIBRARIES: dict[str, Callable[[bytes, bytes, bytes], None]] = {
    "websockets": websockets_session,
    "wsproto": wsproto_session,
}


def run(params: dict[str, Any]) -> dict[str, Any]:
    client = _client_bytes()
    sessions, rounds = params["sessions"], params["rounds"]
    results: dict[str, Any] = {}
    for name, session in LIBRARIES.items():
        session(*client)  # imports and first-call costs out of the timing
        per_round = []
        for _ in range(rounds):
            gc.collect()
            start = time.perf_counter()
            for _ in range(sessions):
                session(*client)
            per_round.append((time.perf_counter() - start) / sessions * 1e6)
        results[name] = {
            "us_per_session_median": round(statistics.median(per_round), 2),
            "us_per_session_rounds": [round(x, 2) for x in per_round],
            "sessions_per_s_one_core": round(1e6 / statistics.median(per_round)),
        }
    fast, slow = sorted(LIBRARIES, key=lambda n: results[n]["us_per_session_median"])
    results["faster"] = fast
    results["ratio"] = round(
        results[slow]["us_per_session_median"] / results[fast]["us_per_session_median"], 2
    )
    return {
        "results": results,
        "leak_check": {"checked": False, "passed": None, "reason": "no server in this scenario"},
        "warnings": [],
    }


def headline(record: dict[str, Any]) -> list[tuple[str, str]]:
    r = record["results"]
    rows = [(f"{name} µs/session", f"{r[name]['us_per_session_median']:.1f}") for name in LIBRARIES]
    rows.append(("faster", f"{r['faster']} ({r['ratio']}×)"))
    return rows
