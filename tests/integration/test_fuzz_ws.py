"""Hypothesis-driven fuzzing of `/ws/meal-logs` on a real `fitiq-rt serve`, frame by frame.

Frames are written raw (our own RFC 6455 encoder over a TCP stream), so the fuzzer can send what
no well-behaved client library would: invalid UTF-8, lone continuations, reserved bits and
opcodes, unmasked or oversized control frames, malformed close payloads, text split mid code
point, binary, oversized messages, floods, and sockets dropped at any moment. Against it:

- every data frame the server sends is JSON that validates against docs/asyncapi.yaml, and each
  text frame gets exactly the reply CONTRACT.md §4 names (pong, resumed, an error frame, or
  nothing), in order, with the socket still open;
- a connection ends only with a documented close code (or the echo of the client's own close),
  and a frame that breaks RFC 6455 itself with exactly the code §7.4.1 names (1002 or 1007);
- afterwards the server is up (/healthz 200), its registry is empty, every `ws.connected` has
  exactly one `ws.disconnected`, and no error was logged.

Bounded: EXAMPLES sessions per test and a wall-clock BUDGET (examples past it are skipped).
"""

from __future__ import annotations

import itertools
import json
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.descriptions import CLOSE_CODES, REFUSALS, validate_frame
from tests.rawws import BINARY, CLOSE, CONTINUATION, PING, PONG, TEXT, RawClient, encode_frame
from tests.servers import SubprocessServer, token_for

EXAMPLES = 1200
HANDSHAKE_EXAMPLES = 300
BUDGET = 35.0  # seconds per fuzz test
MAX_SEQ = 2**53
MAX_MESSAGE_BYTES = 65536  # the server's default FITIQ_MAX_MESSAGE_BYTES

_users = itertools.count()


class Tally:
    """What one test sent and saw, per kind; that test reports it (`pytest -rP`, junit XML)."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.counts: dict[str, int] = {}

    def count(self, key: str, n: int = 1) -> None:
        key = f"{self.backend}: {key}"
        self.counts[key] = self.counts.get(key, 0) + n

    def report(self, record_property: Any) -> None:
        for key, value in sorted(self.counts.items()):
            print(f"{value:6d}  {key}")
            record_property(key, value)


# ------------------------------------------------------------------------------ the model


def expected_reply(text: str) -> str | None:
    """What CONTRACT.md §4 says the server answers to one text message (the JSON is orjson's)."""
    try:
        payload = orjson.loads(text)
    except orjson.JSONDecodeError:
        return "error"
    if not isinstance(payload, dict) or not isinstance(payload.get("type"), str):
        return "error"
    kind = payload["type"]
    if kind == "ping":
        return "pong"
    if kind == "pong":
        return None
    if kind in ("ack", "resume"):
        value = payload.get("seq" if kind == "ack" else "last_seq")
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEQ:
            return "error"
        return None if kind == "ack" else "resumed"
    return "error"


@dataclass
class Action:
    """Bytes to write, what they should provoke, and whether the connection must end after."""

    name: str
    data: bytes
    replies: list[str] = field(default_factory=list)
    control_pongs: list[bytes] = field(default_factory=list)
    ends_with: int | str | None = None  # a close code, "aborted", or None: stays open


def text_action(text: str) -> Action:
    reply = expected_reply(text)
    return Action("text", encode_frame(TEXT, text.encode()), [reply] if reply else [])


def fragmented_action(text: str, cuts: list[int], ping_between: bool) -> Action:
    """A valid message split into continuation frames, cut anywhere (mid code point too)."""
    raw = text.encode()
    bounds = sorted({min(cut, len(raw)) for cut in cuts} | {0, len(raw)})
    pieces = [raw[a:b] for a, b in itertools.pairwise(bounds)] or [b""]
    frames = []
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        frames.append(encode_frame(TEXT if index == 0 else CONTINUATION, piece, fin=last))
        if index == 0 and ping_between and not last:
            frames.append(encode_frame(PING, b"mid"))
    reply = expected_reply(text)
    pongs = [b"mid"] if ping_between and len(pieces) > 1 else []
    return Action("fragmented", b"".join(frames), [reply] if reply else [], pongs)


# ---------------------------------------------------------------------------- strategies

# Text without lone surrogates: a text frame must be UTF-8 (broken UTF-8 is its own action).
texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=60)
json_leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=MAX_SEQ - 2, max_value=2**64 + 2)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)
seq_values = (
    st.integers(min_value=-5, max_value=50)
    | st.sampled_from([MAX_SEQ - 1, MAX_SEQ, MAX_SEQ + 1, 2**63, 2**64, 10**30, -(2**63)])
    | st.floats(allow_nan=False)
    | st.booleans()
    | st.none()
    | texts
    | json_values
)
valid_messages = st.one_of(
    st.just({"type": "ping"}),
    st.just({"type": "pong"}),
    st.builds(lambda seq: {"type": "ack", "seq": seq}, st.integers(0, MAX_SEQ)),
    st.builds(lambda seq: {"type": "resume", "last_seq": seq}, st.integers(0, MAX_SEQ)),
)
message_objects = st.fixed_dictionaries(
    {"type": st.sampled_from(["ping", "pong", "ack", "resume", "welcome", "error"]) | json_values},
    optional={"seq": seq_values, "last_seq": seq_values, "extra": json_values},
)


def _dump(value: Any, ascii_only: bool) -> str:
    # Python's json, not orjson: it writes integers of any size and lone-surrogate escapes.
    return json.dumps(value, ensure_ascii=ascii_only)


def _nested(depth: int, opener: str, leaf: str, closer: str) -> str:
    return opener * depth + leaf + closer * depth


frame_texts = st.one_of(
    st.builds(_dump, valid_messages, st.booleans()),
    st.builds(_dump, message_objects, st.booleans()),
    st.builds(_dump, json_values, st.booleans()),
    texts,
    st.sampled_from(["", " ", "{", "nul", '{"type":"ping"', '{"type":"ping"}{}', "NaN", "1e999"]),
    st.builds(_nested, st.integers(1, 3000), st.just("["), st.just(""), st.just("]")),
    st.builds(_nested, st.integers(1, 3000), st.just('{"type":'), st.just('"x"'), st.just("}")),
    st.integers(1, 500).map(lambda digits: '{"type":"ack","seq":' + "9" * digits + "}"),
)
middle_actions = st.one_of(
    frame_texts.map(text_action),
    st.builds(
        fragmented_action, frame_texts, st.lists(st.integers(0, 200), max_size=4), st.booleans()
    ),
    st.binary(max_size=125).map(
        lambda payload: Action("control ping", encode_frame(PING, payload), [], [payload])
    ),
    st.binary(max_size=125).map(
        lambda payload: Action("control pong", encode_frame(PONG, payload))
    ),
)

# Each breaks RFC 6455 and must be answered with the close code §7.4.1 names.
_BROKEN = {
    "invalid utf-8": (encode_frame(TEXT, b'{"type":"\xff\xfe"}'), 1007),
    "truncated utf-8": (encode_frame(TEXT, b"caf\xc3"), 1007),
    "surrogate utf-8": (encode_frame(TEXT, b"\xed\xa0\x80"), 1007),
    "lone continuation": (encode_frame(CONTINUATION, b"{}"), 1002),
    "text inside a fragmented message": (
        encode_frame(TEXT, b"[", fin=False) + encode_frame(TEXT, b"1]"),
        1002,
    ),
    "reserved bits": (encode_frame(TEXT, b"{}", rsv=4), 1002),
    "reserved opcode": (encode_frame(0x3, b"{}"), 1002),
    "reserved control opcode": (encode_frame(0xB, b""), 1002),
    "unmasked": (encode_frame(TEXT, b"{}", masked=False), 1002),
    "control frame over 125 bytes": (encode_frame(PING, b"p" * 126), 1002),
    "fragmented control frame": (encode_frame(PING, b"p", fin=False), 1002),
    "close code 999": (encode_frame(CLOSE, struct.pack("!H", 999)), 1002),
    "close code 1005": (encode_frame(CLOSE, struct.pack("!H", 1005)), 1002),
    "close payload of 1 byte": (encode_frame(CLOSE, b"\x03"), 1002),
    "close reason not utf-8": (encode_frame(CLOSE, struct.pack("!H", 1000) + b"\xff"), 1007),
}
_VALID_CLOSE_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4000, 4999]


def _close(code: int, reason: str) -> Action:
    # At most 123 bytes of reason, cut at a code point: a cut inside one would rightly get 1007.
    payload = struct.pack("!H", code) + reason.encode()[:100].decode(errors="ignore").encode()
    return Action(f"close {code}", encode_frame(CLOSE, payload), ends_with=code)


terminal_actions = st.one_of(
    st.none(),
    st.sampled_from(sorted(_BROKEN)).map(
        lambda name: Action(name, _BROKEN[name][0], ends_with=_BROKEN[name][1])
    ),
    st.binary(max_size=300).map(
        lambda data: Action("binary", encode_frame(BINARY, data), [], [], 1003)
    ),
    st.integers(MAX_MESSAGE_BYTES + 1, MAX_MESSAGE_BYTES + 5000).map(
        lambda size: Action("oversized", encode_frame(TEXT, b" " * size), ends_with=1009)
    ),
    st.integers(60, 120).map(
        lambda n: Action("flood", encode_frame(TEXT, b'{"type":"pong"}') * n, ends_with=1008)
    ),
    st.builds(_close, st.sampled_from(_VALID_CLOSE_CODES), texts),
    st.just(Action("aborted", b"", ends_with="aborted")),
)


# ------------------------------------------------------------------------------ sessions


async def _read_event(client: RawClient, tally: Tally) -> tuple[str, Any]:
    """("text", frame) | ("pong", payload) | ("close", code) | ("eof", None); frames validated."""
    frame = await client.frame()
    if frame is None:
        return "eof", None
    opcode, payload = frame
    if opcode == TEXT:
        message = orjson.loads(payload)
        validate_frame(message)
        tally.count(f"server frame {message['type']}")
        return "text", message
    if opcode == PONG:
        return "pong", payload
    if opcode == CLOSE:
        code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
        tally.count(f"server close {code}")
        return "close", code
    raise AssertionError(f"the server sent opcode {opcode:#x}")


async def _session(port: int, tally: Tally, actions: list[Action], terminal: Action | None) -> None:
    user = f"fuzz-{next(_users)}"
    status, _, client = await RawClient.connect(port, f"/ws/meal-logs?token={token_for(user)}")
    assert status == 101, status
    try:
        kind, welcome = await _read_event(client, tally)
        assert kind == "text" and welcome["type"] == "welcome", (kind, welcome)
        if terminal is None:
            await _until_synced(client, actions, tally)
        else:
            await _until_ended(client, actions, terminal, tally)
    finally:
        await client.aclose()


async def _until_synced(client: RawClient, actions: list[Action], tally: Tally) -> None:
    """Every action's replies in order, then a polite close that the server echoes."""
    sync = text_action('{"type":"ping"}')
    expected, pongs = [], []
    for action in [*actions, sync]:
        tally.count(f"sent {action.name}")
        assert await client.send(action.data), "the server closed a socket it should keep"
        expected += action.replies
        pongs += action.control_pongs
    replies = []
    while len(replies) < len(expected):
        kind, value = await _read_event(client, tally)
        if kind == "text" and value["type"] != "ping":  # server heartbeats may come any time
            replies.append(value["type"])
        elif kind == "pong":
            assert pongs and value == pongs.pop(0), ("unexpected control pong", value)
        elif kind != "text":
            raise AssertionError(f"{kind} {value} after {replies}, expected {expected}")
    assert replies == expected
    assert not pongs, f"control pongs never came: {pongs}"
    await client.send(encode_frame(CLOSE, struct.pack("!H", 1000)))
    assert await _close_code(client, tally) == 1000


async def _until_ended(
    client: RawClient, actions: list[Action], terminal: Action, tally: Tally
) -> None:
    """Send everything; the connection must end the way the description says."""
    for action in [*actions, terminal]:
        tally.count(f"sent {action.name}")
        if action.ends_with == "aborted":
            return  # drop TCP at once; the server must clean up by itself
        if not await client.send(action.data):
            break
    code = await _close_code(client, tally)
    assert code == terminal.ends_with, f"{terminal.name}: closed with {code}"


async def _close_code(client: RawClient, tally: Tally) -> int | None:
    """Read to the end: the server's close code (documented, or an echo), None if dropped."""
    while True:
        kind, value = await _read_event(client, tally)
        if kind == "close":
            return value
        if kind == "eof":
            return None


# --------------------------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def backend(module_backend: str) -> str:
    return module_backend


@pytest.fixture(scope="module")
def server(module_server: SubprocessServer) -> SubprocessServer:
    return module_server


def _run(server: SubprocessServer, deadline: float, tally: Tally, coro_fn: Any, *args: Any) -> None:
    if time.monotonic() > deadline:
        tally.count("skipped past the budget")
        return
    assert server.port is not None

    async def bounded() -> None:
        with trio.fail_after(15):
            await coro_fn(server.port, tally, *args)

    trio.run(bounded)


def test_fuzzed_sessions_get_documented_answers_only(
    server: SubprocessServer, backend: str, record_property: Any
) -> None:
    tally = Tally(backend)
    deadline = time.monotonic() + BUDGET

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(actions=st.lists(middle_actions, max_size=12), terminal=terminal_actions)
    def run(actions: list[Action], terminal: Action | None) -> None:
        tally.count("sessions")
        _run(server, deadline, tally, _session, actions, terminal)

    try:
        run()
    finally:
        tally.report(record_property)
    _assert_server_clean(server, tally)


async def _handshake(port: int, tally: Tally, query: str) -> None:
    status, head, client = await RawClient.connect(port, f"/ws/meal-logs?{query}")
    tally.count(f"handshake {status}")
    try:
        if status == 101:
            kind, welcome = await _read_event(client, tally)
            assert kind == "text" and welcome["type"] == "welcome"
            await client.send(encode_frame(CLOSE, struct.pack("!H", 1000)))
            assert await _close_code(client, tally) in (1000, None)
            return
        assert status in REFUSALS, status
        body = await _read_body(client, head)
        assert body["error"]["code"] == REFUSALS[status], (status, body)
    finally:
        await client.aclose()


async def _read_body(client: RawClient, head: bytes) -> dict[str, Any]:
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    body = await client._read(length)
    assert body is not None
    return orjson.loads(body)


query_values = st.one_of(
    texts,
    st.integers(-5, 2**64).map(str),
    st.sampled_from(["", "0", "00", "+1", " 1", "1.0", "9007199254740993", "٣", "²", "1e3"]),
)


def test_fuzzed_handshakes_get_101_or_a_documented_refusal(
    server: SubprocessServer, backend: str, record_property: Any
) -> None:
    tally = Tally(backend)
    deadline = time.monotonic() + BUDGET

    @settings(
        max_examples=HANDSHAKE_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        token=st.sampled_from(["good", "none", "garbage", "expired", "admin"]),
        last_seq=st.none() | query_values,
        extra=st.dictionaries(texts, texts, max_size=3),
    )
    def run(token: str, last_seq: str | None, extra: dict[str, str]) -> None:
        tally.count("handshakes")
        params: dict[str, str] = dict(extra)
        tokens = {
            "good": token_for(f"hs-{next(_users)}"),
            "garbage": "x.y.z",
            "expired": token_for("old", ttl=-10),
            "admin": token_for(f"hs-{next(_users)}", admin=True),
        }
        if token in tokens:
            params["token"] = tokens[token]
        if last_seq is not None:
            params["last_seq"] = last_seq
        query = httpx.QueryParams(params)
        _run(server, deadline, tally, _handshake, str(query))

    try:
        run()
    finally:
        tally.report(record_property)
    _assert_server_clean(server, tally)


async def _churn(port: int, tally: Tally) -> None:
    """Many sockets opened and dropped at every stage, 25 at a time."""

    async def one(index: int) -> None:
        stage = index % 5
        if stage == 0:  # TCP only
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await stream.aclose()
            return
        user = f"churn-{index % 7}"  # shared users: the per-user cap is part of the churn
        status, _, client = await RawClient.connect(port, f"/ws/meal-logs?token={token_for(user)}")
        tally.count(f"churn handshake {status}")
        try:
            if stage >= 2 and status == 101:
                await client.frame()  # the welcome
            if stage == 3:
                await client.send(encode_frame(CLOSE, struct.pack("!H", 1000)))
            if stage == 4:
                await client.send(encode_frame(TEXT, b'{"type":"ping"}') * 3)
        finally:
            await client.aclose()

    for batch in range(8):
        async with trio.open_nursery() as nursery:
            for index in range(25):
                nursery.start_soon(one, batch * 25 + index)


def test_rapid_open_and_close(server: SubprocessServer, backend: str, record_property: Any) -> None:
    tally = Tally(backend)
    tally.count("churn sockets", 200)
    try:
        _run(server, time.monotonic() + BUDGET, tally, _churn)
    finally:
        tally.report(record_property)
    _assert_server_clean(server, tally)


def _assert_server_clean(server: SubprocessServer, tally: Tally) -> None:
    """Up, nothing registered, one disconnect per connect, and not a single error logged."""
    admin = {"Authorization": "Bearer " + token_for("ops", admin=True)}
    with httpx.Client(base_url=server.url("")) as http:
        assert http.get("/healthz").status_code == 200
        end = time.monotonic() + 10
        while True:
            listing = http.get("/api/v1/debug/websocket/connections", headers=admin).json()
            if listing["total_connections"] == 0 or time.monotonic() > end:
                break
            time.sleep(0.05)
    assert listing == {"total_connections": 0, "total_users": 0, "connections": []}
    connected = [event["connection_id"] for event in server.events("ws.connected")]
    disconnected = [event["connection_id"] for event in server.events("ws.disconnected")]
    assert sorted(connected) == sorted(disconnected)
    assert len(set(connected)) == len(connected)
    errors = [event for event in server.events() if event.get("level") in ("error", "critical")]
    assert errors == [], errors[:3]
    assert server.proc.poll() is None
    assert {code for key, code in _close_codes_seen(tally)} <= CLOSE_CODES | set(_VALID_CLOSE_CODES)


def _close_codes_seen(tally: Tally) -> Iterator[tuple[str, int]]:
    for key in tally.counts:
        if ": server close " in key and not key.endswith(" None"):
            yield key, int(key.rsplit(" ", 1)[1])
