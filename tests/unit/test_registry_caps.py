"""Registry.try_add: each cap refuses at exactly its limit, and a refusal registers nothing."""

from __future__ import annotations

import uuid

from fitiq_rt.realtime.connection import Connection
from fitiq_rt.realtime.registry import CapExceeded, ConnectionLimits, Registry


def conn(user: str, ip: str | None = "10.0.0.1") -> Connection:
    return Connection.open(uuid.uuid4().hex, user, ip, queue_size=4, wall_now=0.0)


async def test_each_cap_refuses_at_its_limit_and_registers_nothing() -> None:
    registry = Registry()
    limits = ConnectionLimits(total=5, per_user=2, per_ip=3)
    assert registry.try_add(conn("ann"), limits) is None
    assert registry.try_add(conn("ann"), limits) is None
    assert registry.try_add(conn("ann", ip="10.0.0.9"), limits) is CapExceeded.PER_USER
    assert registry.try_add(conn("bob"), limits) is None  # the address's third socket
    assert registry.try_add(conn("cid"), limits) is CapExceeded.PER_IP
    assert registry.try_add(conn("cid", ip=None), limits) is None  # no address: no per-IP cap
    assert registry.try_add(conn("dee", ip="10.0.0.2"), limits) is None
    assert registry.try_add(conn("eve", ip="10.0.0.3"), limits) is CapExceeded.TOTAL
    assert registry.total == 5
    assert registry.count_for_user("ann") == 2 and registry.count_for_user("eve") == 0
    assert registry.count_for_ip("10.0.0.1") == 3


async def test_a_per_ip_cap_of_zero_is_off() -> None:
    registry = Registry()
    limits = ConnectionLimits(total=100, per_user=100, per_ip=0)
    for i in range(50):
        assert registry.try_add(conn(f"u{i}"), limits) is None
    assert registry.count_for_ip("10.0.0.1") == 50
