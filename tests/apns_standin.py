"""A stand-in for Apple's APNs gateway: Hypercorn serving HTTP/2 over TLS (h2 by ALPN) with a
certificate from a `trustme` CA, so the push client meets the wire it meets in production.

It checks what Apple checks and records what it saw; a check that fails is recorded as a
problem and answered 400 (the test asserts `problems == []`): the provider token's ES256
signature against the key's public half, its `kid` and `iss`, every header CONTRACT.md §6 and
the issue name, and the body's shape. Answers are scripted per device token, in order; when the
script runs out the answer is 200. `HANG` never answers.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import jwt
import orjson
import trio
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypercorn.config import Config
from hypercorn.trio import serve

KEY_ID = "KEY1234567"
TEAM_ID = "TEAM987654"
TOPIC = "com.example.fitiq"
HANG = (0, "hang")
WAIT = 15.0  # seconds an expected push may take before the test fails


@attrs.frozen
class Received:
    device_token: str
    headers: dict[str, str]
    body: dict[str, Any]
    claims: dict[str, Any]
    provider_token: str
    http_version: str
    at: float  # time.time() when it was answered


@attrs.define
class ApnsStandIn:
    public_key: ec.EllipticCurvePublicKey
    url: str = ""
    script: dict[str, list[tuple[int, str]]] = attrs.field(factory=dict)
    received: list[Received] = attrs.field(factory=list)
    problems: list[str] = attrs.field(factory=list)
    arrived: int = 0  # requests seen, answered or not

    def answer(self, device_token: str, *answers: tuple[int, str]) -> None:
        self.script.setdefault(device_token, []).extend(answers)

    def for_device(self, device_token: str) -> list[Received]:
        return [r for r in self.received if r.device_token == device_token]

    async def wait_for(self, count: int) -> None:
        with trio.fail_after(WAIT):
            while len(self.received) < count:
                await trio.sleep(0.01)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        self.arrived += 1
        status, reason = self._check(scope, body)
        if (status, reason) == HANG:
            await trio.sleep_forever()
        payload = b"" if status == 200 else orjson.dumps({"reason": reason})
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"apns-id", b"00000000-0000-4000-8000-000000000000")],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    def _check(self, scope: dict[str, Any], raw: bytes) -> tuple[int, str]:
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        path = scope["path"]
        problems: list[str] = []
        if scope["method"] != "POST" or not path.startswith("/3/device/"):
            problems.append(f"request {scope['method']} {path}")
        device_token = path.removeprefix("/3/device/")
        expected = {
            "apns-topic": TOPIC,
            "apns-push-type": "alert",
            "apns-priority": "10",
            "apns-collapse-id": "meal-logs",
        }
        problems += [
            f"{name}: {headers.get(name)!r}"
            for name, value in expected.items()
            if headers.get(name) != value
        ]
        expiration = headers.get("apns-expiration", "")
        if not expiration.isdigit() or not time.time() < int(expiration) <= time.time() + 86400:
            problems.append(f"apns-expiration: {expiration!r}")
        scheme, _, token = headers.get("authorization", "").partition(" ")
        claims: dict[str, Any] = {}
        try:
            if scheme != "bearer":
                raise jwt.InvalidTokenError(f"authorization scheme {scheme!r}")
            if jwt.get_unverified_header(token).get("kid") != KEY_ID:
                raise jwt.InvalidTokenError("kid")
            claims = jwt.decode(
                token, self.public_key, algorithms=["ES256"], options={"require": ["iss", "iat"]}
            )
            if claims["iss"] != TEAM_ID or abs(claims["iat"] - time.time()) > 3600:
                raise jwt.InvalidTokenError(f"claims {claims}")
        except jwt.InvalidTokenError as error:
            problems.append(f"provider token: {error}")
        try:
            body = orjson.loads(raw)
            alert = body["aps"]["alert"]
            assert isinstance(alert["title"], str) and isinstance(alert["body"], str)
            assert body["aps"]["thread-id"] == "meal-logs"
            assert isinstance(body["seq"], int) and isinstance(body["meal_log_id"], str)
            assert body["type"] in ("meal_log.completed", "meal_log.failed")
            assert len(raw) <= 4096
        except (orjson.JSONDecodeError, KeyError, TypeError, AssertionError) as error:
            problems.append(f"body {raw[:200]!r}: {error!r}")
            body = {}
        if scope.get("http_version") != "2":
            problems.append(f"HTTP/{scope.get('http_version')}")
        if problems:
            self.problems += problems
            return 400, "BadRequestStandIn"
        script = self.script.get(device_token) or []
        status, reason = script.pop(0) if script else (200, "")
        if (status, reason) != HANG:
            self.received.append(
                Received(
                    device_token=device_token,
                    headers=headers,
                    body=body,
                    claims=claims,
                    provider_token=token,
                    http_version=scope["http_version"],
                    at=time.time(),
                )
            )
        return status, reason


@attrs.frozen
class ApnsKeys:
    """The team's key as a .p8 file, and the CA the stand-ins' certificates come from."""

    key_file: Path
    public_key: ec.EllipticCurvePublicKey
    ca: trustme.CA
    ca_file: Path


def make_keys(directory: Path) -> ApnsKeys:
    key = ec.generate_private_key(ec.SECP256R1())
    key_file = directory / f"AuthKey_{KEY_ID}.p8"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ca = trustme.CA()
    ca_file = directory / "standin-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return ApnsKeys(key_file=key_file, public_key=key.public_key(), ca=ca, ca_file=ca_file)


def push_env(
    keys: ApnsKeys, production: ApnsStandIn, sandbox: ApnsStandIn | None = None
) -> dict[str, str]:
    """The settings that point a server's push at the stand-ins."""
    return {
        "FITIQ_APNS_KEY_FILE": str(keys.key_file),
        "FITIQ_APNS_KEY_ID": KEY_ID,
        "FITIQ_APNS_TEAM_ID": TEAM_ID,
        "FITIQ_APNS_TOPIC": TOPIC,
        "FITIQ_APNS_URL": production.url,
        "FITIQ_APNS_SANDBOX_URL": (sandbox or production).url,
    }


@asynccontextmanager
async def running_standin(keys: ApnsKeys, directory: Path) -> AsyncIterator[ApnsStandIn]:
    """Serve a stand-in on a free port of 127.0.0.1 for the block, over TLS with h2 by ALPN."""
    await trio.Path(directory).mkdir(parents=True, exist_ok=True)
    cert = keys.ca.issue_cert("127.0.0.1", "localhost")
    pem = directory / "standin.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(pem))
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.certfile = str(pem)
    config.keyfile = str(pem)
    config.errorlog = None
    config.accesslog = None
    standin = ApnsStandIn(public_key=keys.public_key)
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(_serve, standin, config, stop)
        standin.url = binds[0]
        try:
            yield standin
        finally:
            stop.set()
            nursery.cancel_scope.deadline = trio.current_time() + 2


async def _serve(
    app: ApnsStandIn,
    config: Config,
    stop: trio.Event,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    await serve(app, config, shutdown_trigger=stop.wait, task_status=task_status)  # type: ignore[arg-type]
