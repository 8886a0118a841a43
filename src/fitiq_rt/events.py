"""The names of fitiq_rt's structured log events, in one place.

A log line's ``event`` is an interface: the server writes it, and ``fitiq-rt logs`` (and every
operator's grep) reads it. Agreeing by convention alone, a renamed event would silently empty a
report, so emitters and the analyzer import the names from here; the fields
each event carries are in CONTRACT.md §5 (the ones marked there are part of the contract).
"""

from __future__ import annotations

from typing import Final

# ---- server lifecycle ----------------------------------------------------------------------

SERVER_PREFIX: Final = "server."  # every server lifecycle event starts with it
SERVER_STARTED: Final = "server.started"  # the listener is bound; the log covers every socket
SERVER_STOPPING: Final = "server.stopping"  # SIGINT/SIGTERM received: draining begins
SERVER_FORCE_STOPPING: Final = "server.force_stopping"  # a second signal: stop without draining
SERVER_STOPPED: Final = "server.stopped"  # drained and closed; every socket has ended by now
SERVER_ACCEPT_FAILED: Final = "server.accept_failed"  # accept() out of fds/memory; retried
CONNECTION_ERROR: Final = "connection.error"  # a connection's handler raised (a server bug)

# ---- WebSocket sessions --------------------------------------------------------------------

WS_CONNECTED: Final = "ws.connected"  # a socket is registered for its user (after the 101)
WS_DISCONNECTED: Final = "ws.disconnected"  # exactly once per ws.connected, with the reason
WS_REJECTED: Final = "ws.rejected"  # a handshake refused (bad token, caps) before any socket
WS_PING_RECEIVED: Final = "ws.ping_received"  # an application ping (debug level)
WS_PONG_SENT: Final = "ws.pong_sent"  # its pong (debug level)
WS_STALE: Final = "ws.stale"  # no frame from the client within the idle timeout: closing
WS_RESUMED: Final = "ws.resumed"  # history after last_seq replayed (complete=False: truncated)
WS_TOKEN_REFRESHED: Final = "ws.token_refreshed"  # a refresh frame moved the socket's expiry
WS_POSITION_BEHIND: Final = "ws.position_behind"  # the position check found a socket behind
WS_SESSION_ERROR: Final = "ws.session_error"  # a session task raised (a server bug)
WS_STORE_UNAVAILABLE: Final = "ws.store_unavailable"  # a socket's store read met an outage: 1011
POSITION_CHECK_FAILED: Final = "position_check.failed"  # one position check pass failed
POSITION_CHECK_CAUGHT_UP: Final = "position_check.caught_up"  # a pass's sockets and users behind

# ---- meal logs and notifications -----------------------------------------------------------

MEAL_LOG_CREATED: Final = "meal_log.created"  # a POST stored a pending meal log
MEAL_LOG_PROCESSED: Final = "meal_log.processed"  # its outcome and notification are committed
MEAL_LOG_FAILED: Final = "meal_log.failed"  # the processor failed it; failure notification stored
NOTIFICATION_DELIVERED: Final = "notification.delivered"  # handed to the user's open sockets
NOTIFICATION_QUEUED: Final = "notification.queued"  # no open socket here: stored for resume
DISPATCHER_RECOVERED: Final = "dispatcher.recovered"  # the sweep queued unfinished meal logs
DISPATCHER_RECOVERY_FAILED: Final = "dispatcher.recovery_failed"  # that sweep hit a store error
DISPATCHER_SAVE_RETRY: Final = "dispatcher.save_retry"  # saving an outcome failed; retrying
DISPATCHER_ERROR: Final = "dispatcher.error"  # a worker raised outside the processor (a bug)

# ---- store and broker ----------------------------------------------------------------------

STORE_CALL: Final = "store.call"  # one store call's queue/run/resume times (debug level)
STORE_WAL_RESTARTED: Final = "store.wal_restarted"  # SQLite RESTART checkpoint rewound the WAL
STORE_CHECKPOINT_FAILED: Final = "store.checkpoint_failed"  # a background checkpoint failed
STORE_CLAIMS_RELEASED: Final = "store.claims_released"  # a restarted node freed its old claims
BROKER_CONNECTED: Final = "broker.connected"  # first Redis subscription is up
BROKER_RECONNECTED: Final = "broker.reconnected"  # Redis is back after an outage
BROKER_DISCONNECTED: Final = "broker.disconnected"  # Redis went away; reconnecting
BROKER_CONNECT_FAILED: Final = "broker.connect_failed"  # still cannot reach Redis (sampled)
BROKER_CATCH_UP_FAILED: Final = "broker.catch_up_failed"  # post-reconnect catch-up hit the store
BROKER_CAUGHT_UP: Final = "broker.caught_up"  # sockets that missed publishes got the newest
BROKER_BAD_MESSAGE: Final = "broker.bad_message"  # a Redis message that is not a notification
BROKER_PUBLISH_FAILED: Final = "broker.publish_failed"  # a publish failed (position check covers)

# ---- push (APNs) and devices ---------------------------------------------------------------

PUSH_SENT: Final = "push.sent"  # APNs answered 200 for one device of a queued notification
PUSH_FAILED: Final = "push.failed"  # a push was given up (final answer, or retries ran out)
PUSH_DROPPED: Final = "push.dropped"  # the push queue was full: the push (not the note) dropped
DEVICE_REGISTERED: Final = "device.registered"  # PUT /api/v1/devices/{token} stored a device
DEVICE_REMOVED: Final = "device.removed"  # a device is gone: APNs refused it, or it signed out
DEVICE_REMOVE_FAILED: Final = "device.remove_failed"  # a refused device could not be deleted

# ---- HTTP ----------------------------------------------------------------------------------

HTTP_REQUEST: Final = "http.request"  # the access log line (101 for WebSocket upgrades)
HTTP_ERROR: Final = "http.error"  # a request reached the 500 handler (a server bug)

# ---- the reference client (fitiq-rt listen) ------------------------------------------------

CLIENT_CONNECTED: Final = "client.connected"  # the client's socket got its welcome
CLIENT_CONNECT_FAILED: Final = "client.connect_failed"  # a connect failed; retry after backoff
CLIENT_GAP: Final = "client.gap"  # a seq skipped ahead: reconnect and resume
CLIENT_SERVER_ERROR: Final = "client.server_error"  # the server answered an error frame
CLIENT_TOKEN_EXPIRING: Final = "client.token_expiring"  # warned, but no newer token to send
CLIENT_TOKEN_REFRESHED: Final = "client.token_refreshed"  # the server accepted the new token
CLIENT_TOKEN_COMMAND_FAILED: Final = "client.token_command_failed"  # kept the previous token
