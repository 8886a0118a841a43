"""Push timing and decisions on a virtual clock: the response policy (backoff, bound, request
timeout, renewal), the provider token's cache, the payload's size, and the queue's bound.

The sender is a fake only because a virtual clock needs one (the wire is tested against the
HTTP/2 stand-in in tests/integration/test_push.py); the store is a real SQLite file.
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any

import jwt
import pytest
import structlog
import trio
from cryptography.hazmat.primitives.asymmetric import ec

from fitiq_rt.config import SettingsError, load_settings
from fitiq_rt.devices import Device
from fitiq_rt.meals.sqlite_store import SqliteStore
from fitiq_rt.notification import Notification
from fitiq_rt.observability.metrics import Metrics
from fitiq_rt.push.apns import ApnsAnswer, ApnsUnreachable
from fitiq_rt.push.payload import MAX_PAYLOAD_BYTES, build_payload
from fitiq_rt.push.policy import BACKOFF_CAP, BACKOFF_START, PushResult, deliver
from fitiq_rt.push.provider_token import ProviderToken
from fitiq_rt.push.service import PushService

KEY = ec.generate_private_key(ec.SECP256R1())
DEVICE = Device("ab" * 32, "ana", "ios", "production", "t", "t")
HANG = "hang"


class ScriptedSender:
    """Answers in order (the last one repeats); records when each request came, with its token."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[float, str, str]] = []

    async def send(self, device: Device, payload: bytes, provider_token: str) -> ApnsAnswer:
        self.calls.append((trio.current_time(), device.device_token, provider_token))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if answer == HANG:
            await trio.sleep_forever()
        if isinstance(answer, Exception):
            raise answer
        assert isinstance(answer, ApnsAnswer)
        return answer


def tokens(wall: float = 1_800_000_000.0) -> ProviderToken:
    return ProviderToken(KEY, key_id="KID1", team_id="TEAM1", refresh=2400, wall_clock=lambda: wall)


async def push(
    sender: ScriptedSender,
    *,
    request_timeout: float = 10,
    retry_timeout: float = 60,
    seed: int = 1,
    provider: ProviderToken | None = None,
) -> PushResult:
    return await deliver(
        sender,
        provider or tokens(),
        DEVICE,
        b"{}",
        request_timeout=request_timeout,
        retry_timeout=retry_timeout,
        rng=random.Random(seed),
    )


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_backoff_doubles_from_one_second_to_the_cap_jittered_and_bounded(
    autojump_clock: trio.abc.Clock, status: int
) -> None:
    sender = ScriptedSender(ApnsAnswer(status, "Busy"))
    result = await push(sender, retry_timeout=120)
    times = [t for t, _, _ in sender.calls]
    assert times[0] == 0
    backoff = BACKOFF_START
    for before, after in itertools.pairwise(times):
        assert backoff / 2 <= after - before <= backoff  # the upper half of each step
        backoff = min(backoff * 2, BACKOFF_CAP)
    # No attempt after the bound, and it gave up only when the next pause could pass it.
    assert times[-1] <= 120 < times[-1] + backoff
    assert len(times) >= 7  # 1, 2, 4, 8, 16, 30, 30 ... at least until 120 s
    assert max(b - a for a, b in itertools.pairwise(times)) <= BACKOFF_CAP
    assert result == PushResult("failed", "Busy", status, len(times))
    assert trio.current_time() == times[-1]  # gave up at once, no pause past the bound


async def test_two_pushes_failing_together_do_not_retry_together(
    autojump_clock: trio.abc.Clock,
) -> None:
    first, second = ScriptedSender(ApnsAnswer(503, None)), ScriptedSender(ApnsAnswer(503, None))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: push(first, retry_timeout=10, seed=1))
        nursery.start_soon(lambda: push(second, retry_timeout=10, seed=2))
    assert [t for t, _, _ in first.calls][1:] != [t for t, _, _ in second.calls][1:]


async def test_a_success_after_retries_is_sent(autojump_clock: trio.abc.Clock) -> None:
    sender = ScriptedSender(
        ApnsAnswer(429, "TooManyRequests"), ApnsAnswer(500, None), ApnsAnswer(200, None)
    )
    assert await push(sender) == PushResult("sent", "ok", 200, 3)


async def test_a_hanging_request_times_out_after_the_request_timeout(
    autojump_clock: trio.abc.Clock,
) -> None:
    sender = ScriptedSender(HANG)
    assert await push(sender, request_timeout=10, retry_timeout=0) == PushResult(
        "failed", "timeout", None, 1
    )
    assert trio.current_time() == 10


async def test_a_timeout_is_retried_within_the_bound(autojump_clock: trio.abc.Clock) -> None:
    sender = ScriptedSender(HANG)
    result = await push(sender, request_timeout=10, retry_timeout=15)
    (first, _, _), (second, _, _) = sender.calls  # 0 s; 10 s + 0.5-1 s; then 21 s+ is past 15
    assert first == 0 and 10.5 <= second <= 11
    assert result == PushResult("failed", "timeout", None, 2)
    assert trio.current_time() == second + 10


async def test_an_unreachable_gateway_is_retried(autojump_clock: trio.abc.Clock) -> None:
    sender = ScriptedSender(ApnsUnreachable("ConnectError"), ApnsAnswer(200, None))
    assert await push(sender) == PushResult("sent", "ok", 200, 2)
    sender = ScriptedSender(ApnsUnreachable("ConnectError"))
    result = await push(sender, retry_timeout=0)
    assert result == PushResult("failed", "unreachable:ConnectError", None, 1)


async def test_an_expired_provider_token_is_renewed_and_retried_at_once_one_time(
    autojump_clock: trio.abc.Clock,
) -> None:
    provider = tokens()
    expired = ApnsAnswer(403, "ExpiredProviderToken")
    sender = ScriptedSender(expired, ApnsAnswer(200, None))
    assert await push(sender, provider=provider) == PushResult("sent", "ok", 200, 2)
    (t1, _, old), (t2, _, new) = sender.calls
    assert t1 == t2 == 0 and old != new and provider.minted == 2
    sender = ScriptedSender(expired, expired, ApnsAnswer(200, None))
    result = await push(sender, provider=provider)
    assert result == PushResult("failed", "ExpiredProviderToken", 403, 2)  # no third try


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [
        (ApnsAnswer(410, "Unregistered"), "removed"),
        (ApnsAnswer(400, "BadDeviceToken"), "removed"),
        (ApnsAnswer(400, "BadTopic"), "failed"),
        (ApnsAnswer(403, "InvalidProviderToken"), "failed"),
        (ApnsAnswer(413, "PayloadTooLarge"), "failed"),
    ],
)
async def test_final_answers_are_not_retried(
    autojump_clock: trio.abc.Clock, answer: ApnsAnswer, outcome: str
) -> None:
    sender = ScriptedSender(answer, ApnsAnswer(200, None))
    result = await push(sender)
    assert (result.outcome, result.reason, result.status, result.attempts) == (
        outcome,
        answer.reason,
        answer.status,
        1,
    )
    assert trio.current_time() == 0


async def test_the_provider_token_is_reused_until_the_refresh_then_renewed(
    autojump_clock: trio.abc.Clock,
) -> None:
    wall = [1_800_000_000.0]
    provider = ProviderToken(
        KEY, key_id="KID1", team_id="TEAM1", refresh=2400, wall_clock=lambda: wall[0]
    )
    first = provider.current()
    header = jwt.get_unverified_header(first)
    assert (header["alg"], header["kid"]) == ("ES256", "KID1")
    claims = jwt.decode(
        first, KEY.public_key(), algorithms=["ES256"], options={"verify_iat": False}
    )
    assert claims == {"iss": "TEAM1", "iat": 1_800_000_000}
    await trio.sleep(2399.9)
    assert provider.current() == first
    wall[0] += 2400
    await trio.sleep(0.1)
    second = provider.current()
    assert second != first
    assert (
        jwt.decode(second, KEY.public_key(), algorithms=["ES256"], options={"verify_iat": False})[
            "iat"
        ]
        == 1_800_002_400
    )
    assert provider.renew(first) == second  # a late rejection of the old token: no new one
    third = provider.renew(second)
    assert third != second and provider.minted == 3


def note(kind: str, raw_input: str, calories: float = 300.0) -> Notification:
    data = {"id": "m-1", "raw_input": raw_input, "totals": {"calories": calories}}
    return Notification(user_id="ana", seq=7, type=kind, event_id="e", created_at="t", data=data)


def test_the_payload_names_the_meal_and_stays_under_4_kb() -> None:
    import orjson

    body = orjson.loads(build_payload(note("meal_log.completed", "2 eggs\nand   toast", 300.4)))
    assert body == {
        "aps": {
            "alert": {"title": "Meal logged", "body": "2 eggs and toast — 300 kcal"},
            "thread-id": "meal-logs",
        },
        "seq": 7,
        "meal_log_id": "m-1",
        "type": "meal_log.completed",
    }
    failed = orjson.loads(build_payload(note("meal_log.failed", "zzz")))
    assert failed["aps"]["alert"]["title"] == "Meal not logged"
    for worst in ("🍳" * 2000, '"\\' * 1000, "\x01" * 2000, "a" * 2000):
        for kind in ("meal_log.completed", "meal_log.failed"):
            encoded = build_payload(note(kind, worst))
            assert len(encoded) <= MAX_PAYLOAD_BYTES
            assert orjson.loads(encoded)["aps"]["alert"]["body"]


async def test_a_full_queue_drops_the_push_not_the_caller(tmp_path: Path) -> None:
    metrics = Metrics()
    service = PushService(
        SqliteStore(tmp_path / "unused.sqlite3"),  # offer never touches the store
        ScriptedSender(ApnsAnswer(200, None)),
        tokens(),
        metrics,
        queue_size=1,
        concurrency=1,
        request_timeout=10,
        retry_timeout=60,
    )
    with structlog.testing.capture_logs() as logs:
        assert service.offer(note("meal_log.completed", "egg")) is True
        assert service.offer(note("meal_log.completed", "egg")) is False
    assert [(e["event"], e["reason"]) for e in logs] == [("push.dropped", "queue_full")]
    assert metrics.registry.get_sample_value("fitiq_push_total", {"outcome": "dropped"}) == 1


class DevicesInMemory:
    """The two store calls the push service makes, without the SQLite store's worker thread: a
    virtual clock jumps while a task waits on a thread, so the real store cannot be used here."""

    def __init__(self, *devices: Device) -> None:
        self.devices = list(devices)

    async def list_devices(self, user_id: str) -> list[Device]:
        return [d for d in self.devices if d.user_id == user_id]

    async def delete_device(self, user_id: str, device_token: str) -> bool:
        before = len(self.devices)
        self.devices = [
            d for d in self.devices if (d.user_id, d.device_token) != (user_id, device_token)
        ]
        return len(self.devices) < before


async def test_a_hanging_device_does_not_hold_back_the_users_other_device(
    autojump_clock: trio.abc.Clock,
) -> None:
    hangs, answers = "01" * 32, "02" * 32
    store = DevicesInMemory(
        Device(hangs, "ana", "ios", "production", "t", "t"),
        Device(answers, "ana", "ios", "sandbox", "t", "t"),
    )

    class OneHangs(ScriptedSender):
        async def send(self, device: Device, payload: bytes, provider_token: str) -> ApnsAnswer:
            self.calls.append((trio.current_time(), device.device_token, provider_token))
            if device.device_token == hangs:
                await trio.sleep_forever()
            return ApnsAnswer(200, None)

    sender = OneHangs()
    service = PushService(
        store,  # type: ignore[arg-type]
        sender,
        tokens(),
        Metrics(),
        queue_size=8,
        concurrency=2,
        request_timeout=10,
        retry_timeout=0,
    )
    with structlog.testing.capture_logs() as logs:
        async with trio.open_nursery() as nursery:
            await nursery.start(service.run)
            service.offer(note("meal_log.completed", "egg"))
            await trio.sleep(20)
            nursery.cancel_scope.cancel()
    outcomes = [(e["event"], e.get("device"), e.get("ms")) for e in logs]
    assert outcomes == [("push.sent", answers[-8:], 0.0), ("push.failed", hangs[-8:], None)]
    assert sorted(t for t, _, _ in sender.calls) == [0, 0]
    failed = logs[1]
    assert (failed["reason"], failed["attempts"]) == ("timeout", 1)


def _push_settings(**extra: str) -> dict[str, str]:
    return {
        "FITIQ_APNS_KEY_FILE": "k.p8",
        "FITIQ_APNS_KEY_ID": "K",
        "FITIQ_APNS_TEAM_ID": "T",
        "FITIQ_APNS_TOPIC": "com.x",
        **extra,
    }


def test_push_settings_are_checked_at_start() -> None:
    assert load_settings({}).push_enabled is False
    assert load_settings(_push_settings()).push_enabled is True
    with pytest.raises(SettingsError, match="so FITIQ_APNS_TOPIC must be too"):
        load_settings(_push_settings(FITIQ_APNS_TOPIC=""))
    with pytest.raises(SettingsError, match="FITIQ_APNS_URL must start with https://"):
        load_settings(_push_settings(FITIQ_APNS_URL="http://api.push.apple.com"))
    for bad in ("1199", "3600"):
        with pytest.raises(SettingsError, match="FITIQ_APNS_TOKEN_REFRESH"):
            load_settings(_push_settings(FITIQ_APNS_TOKEN_REFRESH=bad))
    with pytest.raises(SettingsError, match="FITIQ_PUSH_TIMEOUT"):
        load_settings(_push_settings(FITIQ_PUSH_TIMEOUT="0"))
