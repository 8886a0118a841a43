"""The connection registry: user_id -> {connection_id -> Connection}.

Adding and removing are plain synchronous dict operations (no await between the check and the
change), and removal is by connection id: a reconnect that overlaps the old socket's cleanup can
never remove the new one. That is exactly the bug the seed report describes.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator

import attrs
import trio

from ..notification import Notification
from .closing import CloseRule
from .connection import Connection

UserHook = Callable[[str], None]


@attrs.frozen
class ConnectionLimits:
    """The socket caps (FITIQ_MAX_CONNECTIONS, _PER_USER, _PER_IP; per_ip 0 means off)."""

    total: int
    per_user: int
    per_ip: int = 0


class CapExceeded(enum.Enum):
    TOTAL = "total"
    PER_USER = "per_user"
    PER_IP = "per_ip"


class Registry:
    """Who is connected, right now, in this process."""

    def __init__(self) -> None:
        self._by_user: dict[str, dict[str, Connection]] = {}
        self._per_ip: dict[str, int] = {}
        self.total = 0
        # Called when a user gets a first local socket / loses the last one (broker subscriptions).
        self.on_first_connection: UserHook | None = None
        self.on_last_disconnection: UserHook | None = None
        self._emptied: trio.Event | None = None

    def try_add(self, conn: Connection, limits: ConnectionLimits) -> CapExceeded | None:
        """Register `conn` unless a cap is reached: the check and the insert are one step, so
        no other handshake can slip in between them."""
        if self.total >= limits.total:
            return CapExceeded.TOTAL
        if self.count_for_user(conn.user_id) >= limits.per_user:
            return CapExceeded.PER_USER
        if limits.per_ip and conn.client_ip and self.count_for_ip(conn.client_ip) >= limits.per_ip:
            return CapExceeded.PER_IP
        self.add(conn)
        return None

    def add(self, conn: Connection) -> None:
        sockets = self._by_user.get(conn.user_id)
        first = sockets is None
        if sockets is None:
            sockets = self._by_user[conn.user_id] = {}
        sockets[conn.connection_id] = conn
        self.total += 1
        if conn.client_ip:
            self._per_ip[conn.client_ip] = self._per_ip.get(conn.client_ip, 0) + 1
        if first and self.on_first_connection is not None:
            self.on_first_connection(conn.user_id)

    def remove(self, conn: Connection) -> bool:
        """Remove exactly this connection; False if it was not (or no longer) registered."""
        sockets = self._by_user.get(conn.user_id)
        if sockets is None or sockets.get(conn.connection_id) is not conn:
            return False
        del sockets[conn.connection_id]
        self.total -= 1
        if conn.client_ip:
            left = self._per_ip[conn.client_ip] - 1
            if left:
                self._per_ip[conn.client_ip] = left
            else:
                del self._per_ip[conn.client_ip]
        if not self.total and self._emptied is not None:
            self._emptied.set()
        if not sockets:
            del self._by_user[conn.user_id]
            if self.on_last_disconnection is not None:
                self.on_last_disconnection(conn.user_id)
        return True

    def count_for_user(self, user_id: str) -> int:
        sockets = self._by_user.get(user_id)
        return len(sockets) if sockets else 0

    def count_for_ip(self, client_ip: str) -> int:
        return self._per_ip.get(client_ip, 0)

    @property
    def total_users(self) -> int:
        return len(self._by_user)

    def users(self) -> list[str]:
        return list(self._by_user)

    def connections_of(self, user_id: str) -> list[Connection]:
        sockets = self._by_user.get(user_id)
        return list(sockets.values()) if sockets else []

    def __iter__(self) -> Iterator[Connection]:
        for sockets in list(self._by_user.values()):
            yield from list(sockets.values())

    def deliver(self, user_id: str, note: Notification) -> int:
        """Hand `note` to every socket of the user without blocking; returns how many took it.

        A socket whose queue is full is closed as a slow consumer (4029) instead of making the
        publisher wait: the notification is already stored, and the client's resume gets it.
        """
        sockets = self._by_user.get(user_id)
        if not sockets:
            return 0
        delivered = 0
        for conn in list(sockets.values()):
            if conn.offer(note):
                delivered += 1
        return delivered

    async def wait_empty(self) -> None:
        """Return once no connection is registered (shutdown waits for sessions to log out)."""
        while self.total:
            self._emptied = trio.Event()
            await self._emptied.wait()

    def close_all(self, rule: CloseRule) -> int:
        """Ask every session to end (server shutdown); each removes itself in its finally."""
        count = 0
        for conn in self:
            conn.end(rule)
            count += 1
        return count
