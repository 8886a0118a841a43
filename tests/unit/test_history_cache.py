"""The single-node latest-seq cache: values only rise, misses fall back to the store."""

from __future__ import annotations

from fitiq_rt.notifications import CachedHistory, LatestSeqCache, MemoryHistory
from tests.fakes import Harness


def test_values_only_rise_and_capacity_is_bounded() -> None:
    cache = LatestSeqCache(capacity=2)
    assert cache.raise_to("a", 5) == 5
    assert cache.raise_to("a", 3) == 5  # a slow cold read cannot lower it
    cache.raise_to("b", 1)
    cache.raise_to("c", 1)  # evicts the oldest entry
    assert cache.get("a") is None
    assert (cache.get("b"), cache.get("c")) == (1, 1)


async def test_cached_history_reads_the_store_once_then_follows_publishes() -> None:
    store = MemoryHistory()
    harness = Harness(history=store)
    harness.publish("u1")
    harness.publish("u1")
    reads = 0
    original = store.latest_seq

    async def counting(user_id: str) -> int:
        nonlocal reads
        reads += 1
        return await original(user_id)

    store.latest_seq = counting  # type: ignore[method-assign]
    cache = LatestSeqCache()
    history = CachedHistory(store, cache)
    assert await history.latest_seq("u1") == 2
    assert await history.latest_seq("u1") == 2
    cache.raise_to("u1", 3)  # what LocalBroker.publish does before delivering
    assert await history.latest_seq("u1") == 3
    assert reads == 1
