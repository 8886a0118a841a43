"""What each APNs answer means for one push to one device, as Apple documents them.

- 200: sent.
- 410 (Unregistered) and 400 BadDeviceToken: the token is dead; the device is removed.
- 403 ExpiredProviderToken: renew the provider token and retry at once, one time.
- 429, 5xx, a timeout (FITIQ_PUSH_TIMEOUT per request) or no answer at all: retried after a
  backoff that doubles from BACKOFF_START to BACKOFF_CAP, each pause drawn from its upper half
  (so pushes that failed together do not retry together); no attempt starts after
  FITIQ_PUSH_RETRY_TIMEOUT, so one push is over within that bound plus one request timeout.
- anything else (another 400 or 403, 413, ...): failed; retrying cannot help.
The stored notification never depends on any of this: the phone gets it on resume.
"""

from __future__ import annotations

import random
from typing import Literal, Protocol

import attrs
import trio

from ..backoff import Backoff
from ..devices import Device
from .apns import ApnsAnswer, ApnsUnreachable
from .provider_token import ProviderToken

BACKOFF_START = 1.0
BACKOFF_CAP = 30.0
RETRY = Backoff(initial=BACKOFF_START, cap=BACKOFF_CAP)

Outcome = Literal["sent", "removed", "failed"]


class Sender(Protocol):
    async def send(self, device: Device, payload: bytes, provider_token: str) -> ApnsAnswer: ...


@attrs.frozen
class PushResult:
    outcome: Outcome
    reason: str  # "ok", Apple's reason, "timeout", "unreachable:<error>", "status_<n>"
    status: int | None  # the last HTTP status, None when there was none
    attempts: int


def _dead_token(answer: ApnsAnswer) -> bool:
    return answer.status == 410 or (answer.status == 400 and answer.reason == "BadDeviceToken")


def _retryable(answer: ApnsAnswer) -> bool:
    return answer.status == 429 or answer.status >= 500


async def deliver(
    sender: Sender,
    tokens: ProviderToken,
    device: Device,
    payload: bytes,
    *,
    request_timeout: float,
    retry_timeout: float,
    rng: random.Random,
) -> PushResult:
    """Push `payload` to `device` until one of the outcomes above."""
    give_up_at = trio.current_time() + retry_timeout
    renewed = False
    attempts = 0
    retries = 0  # pauses taken so far: the backoff's step
    while True:
        attempts += 1
        token = tokens.current()
        answer: ApnsAnswer | None = None
        reason = "timeout"
        with trio.move_on_after(request_timeout):
            try:
                answer = await sender.send(device, payload, token)
            except ApnsUnreachable as error:
                reason = f"unreachable:{error}"
        status = None
        if answer is not None:
            if answer.status == 200:
                return PushResult("sent", "ok", 200, attempts)
            status = answer.status
            reason = answer.reason or f"status_{status}"
            if _dead_token(answer):
                return PushResult("removed", reason, status, attempts)
            if answer.status == 403 and answer.reason == "ExpiredProviderToken" and not renewed:
                tokens.renew(token)
                renewed = True
                continue
            if not _retryable(answer):
                return PushResult("failed", reason, status, attempts)
        pause = RETRY.delay(retries, rng)
        if trio.current_time() + pause > give_up_at:
            return PushResult("failed", reason, status, attempts)
        await trio.sleep(pause)
        retries += 1
