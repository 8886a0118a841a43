"""The push queue: notifications no socket received, pushed by a few tasks off the hot path.

`offer` is synchronous and never waits: the worker that stored the notification, the socket
path and the REST answer never wait on APNs. A full queue (FITIQ_PUSH_QUEUE) drops the push and
says so (`push.dropped`); the notification itself is already stored and reaches the phone on
resume. FITIQ_PUSH_CONCURRENCY tasks serve the queue; each push goes to every device of the user
at once, so a device whose gateway hangs does not hold back the others.
"""

from __future__ import annotations

import random

import trio

from ..devices import Device, device_tail
from ..logconfig import get_logger
from ..meals.store import Store, StoreUnavailable
from ..notification import Notification
from ..observability.metrics import Metrics
from .payload import build_payload
from .policy import PushResult, Sender, deliver
from .provider_token import ProviderToken

log = get_logger("fitiq_rt.push")


class PushService:
    def __init__(
        self,
        store: Store,
        sender: Sender,
        tokens: ProviderToken,
        metrics: Metrics,
        *,
        queue_size: int,
        concurrency: int,
        request_timeout: float,
        retry_timeout: float,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.sender = sender
        self.tokens = tokens
        self.metrics = metrics
        self.concurrency = concurrency
        self.request_timeout = request_timeout
        self.retry_timeout = retry_timeout
        self.rng = rng or random.Random()
        self._queue_in, self._queue_out = trio.open_memory_channel[tuple[Notification, float]](
            queue_size
        )

    def offer(self, note: Notification) -> bool:
        """Queue a push for `note` without waiting; False (logged, counted) when full."""
        try:
            self._queue_in.send_nowait((note, trio.current_time()))
        except trio.WouldBlock:
            self.metrics.push.labels("dropped").inc()
            log.warning("push.dropped", user_id=note.user_id, seq=note.seq, reason="queue_full")
            return False
        return True

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                for _ in range(self.concurrency):
                    nursery.start_soon(self._serve)
                task_status.started()
        finally:
            aclose = getattr(self.sender, "aclose", None)
            if aclose is not None:
                with trio.CancelScope(shield=True), trio.move_on_after(1.0):
                    await aclose()

    async def _serve(self) -> None:
        async for note, queued_at in self._queue_out:
            await self.push(note, queued_at)

    async def push(self, note: Notification, queued_at: float) -> None:
        """Push `note` to every device of its user (none registered: nothing to do)."""
        try:
            devices = await self.store.list_devices(note.user_id)
        except StoreUnavailable:
            self.metrics.push.labels("failed").inc()
            log.warning(
                "push.failed",
                user_id=note.user_id,
                seq=note.seq,
                device=None,
                reason="store_unavailable",
                status=None,
            )
            return
        if not devices:
            return
        payload = build_payload(note)
        async with trio.open_nursery() as nursery:
            for device in devices:
                nursery.start_soon(self._push_one, note, device, payload, queued_at)

    async def _push_one(
        self, note: Notification, device: Device, payload: bytes, queued_at: float
    ) -> None:
        result = await deliver(
            self.sender,
            self.tokens,
            device,
            payload,
            request_timeout=self.request_timeout,
            retry_timeout=self.retry_timeout,
            rng=self.rng,
        )
        self.metrics.push.labels(result.outcome).inc()
        fields = {
            "user_id": note.user_id,
            "seq": note.seq,
            "device": device_tail(device.device_token),
        }
        if result.outcome == "sent":
            waited_ms = (trio.current_time() - queued_at) * 1000
            log.info("push.sent", **fields, attempts=result.attempts, ms=round(waited_ms, 3))
        elif result.outcome == "removed":
            await self._remove(device, result)
            log.info(
                "device.removed",
                user_id=note.user_id,
                device=fields["device"],
                reason=result.reason,
                status=result.status,
            )
        else:
            log.warning(
                "push.failed",
                **fields,
                reason=result.reason,
                status=result.status,
                attempts=result.attempts,
            )

    async def _remove(self, device: Device, result: PushResult) -> None:
        """Forget a token APNs called dead, if it is still that user's (it may have moved)."""
        try:
            await self.store.delete_device(device.user_id, device.device_token)
        except StoreUnavailable:
            log.warning(
                "device.remove_failed",
                user_id=device.user_id,
                device=device_tail(device.device_token),
                reason=result.reason,
            )
