"""Notifications: the stored, per-user-seq events a meal log's outcome causes, and how they reach
sockets. This package owns the value, the history protocol the store implements, the seq cache,
the notifier (store, then publish, in seq order) and the brokers (in-process, Redis). It knows no
meal logs and no WebSocket sessions: the meal store commits a notification, the realtime package
delivers it, each through the protocols here.

`RedisBroker` is imported from `fitiq_rt.notifications.redis_broker` (it needs the `redis` extra).
"""

from __future__ import annotations

from .broker import Broker, LocalBroker, LocalSockets
from .history import HistoryPage, MemoryHistory, NotificationHistory
from .notifier import Notifier, PushQueue, StoreNotification
from .seq_cache import CachedHistory, LatestSeqCache
from .value import Notification

__all__ = [
    "Broker",
    "CachedHistory",
    "HistoryPage",
    "LatestSeqCache",
    "LocalBroker",
    "LocalSockets",
    "MemoryHistory",
    "Notification",
    "NotificationHistory",
    "Notifier",
    "PushQueue",
    "StoreNotification",
]
