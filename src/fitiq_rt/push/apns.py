"""The APNs provider API over HTTP/2: one long-lived httpx client per gateway.

Apple asks providers to keep their connections open and reuse them (opening one per push looks
like an attack); HTTP/2 multiplexes every push of this node over one TLS connection per gateway
(production, sandbox), opened at the first push. A device registered as "sandbox" (a
development build) is pushed through the sandbox gateway. Certificate checks are httpx's:
certifi's roots, or SSL_CERT_FILE when set (a proxy's, or a test stand-in's CA).
"""

from __future__ import annotations

import time

import attrs
import httpx
import orjson

from ..devices import Device

PUSH_TYPE = "alert"
PRIORITY = "10"  # deliver now (5 would let iOS wait for a convenient moment)
COLLAPSE_ID = "meal-logs"  # a burst of meals for one user shows as one alert


@attrs.frozen
class ApnsAnswer:
    status: int
    reason: str | None  # Apple's `reason` ("BadDeviceToken", ...), None on 200


class ApnsUnreachable(Exception):
    """The request got no HTTP answer (connect, TLS or protocol failure); worth a retry."""


class ApnsClient:
    def __init__(
        self,
        *,
        production_url: str,
        sandbox_url: str,
        topic: str,
        timeout: float,
        expiration: float,
    ) -> None:
        self._urls = {"production": production_url, "sandbox": sandbox_url}
        self._topic = topic
        self._timeout = timeout
        self._expiration = expiration
        self._clients: dict[str, httpx.AsyncClient] = {}

    def _client(self, environment: str) -> httpx.AsyncClient:
        client = self._clients.get(environment)
        if client is None:
            client = httpx.AsyncClient(
                base_url=self._urls.get(environment, self._urls["production"]),
                http2=True,
                timeout=self._timeout,
            )
            self._clients[environment] = client
        return client

    def headers(self, provider_token: str) -> dict[str, str]:
        # 0 asks APNs for one attempt only; otherwise an epoch second after which it gives up.
        expiration = int(time.time() + self._expiration) if self._expiration else 0
        return {
            "authorization": f"bearer {provider_token}",
            "apns-topic": self._topic,
            "apns-push-type": PUSH_TYPE,
            "apns-priority": PRIORITY,
            "apns-collapse-id": COLLAPSE_ID,
            "apns-expiration": str(expiration),
            "content-type": "application/json",
        }

    async def send(self, device: Device, payload: bytes, provider_token: str) -> ApnsAnswer:
        try:
            response = await self._client(device.environment).post(
                f"/3/device/{device.device_token}",
                content=payload,
                headers=self.headers(provider_token),
            )
        except httpx.TransportError as error:
            raise ApnsUnreachable(type(error).__name__) from None
        if response.status_code == 200:
            return ApnsAnswer(200, None)
        return ApnsAnswer(response.status_code, _reason(response.content))

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()


def _reason(body: bytes) -> str | None:
    """Apple's error body is `{"reason": "..."}` (410 adds a timestamp)."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    reason = parsed.get("reason") if isinstance(parsed, dict) else None
    return reason[:64] if isinstance(reason, str) else None
