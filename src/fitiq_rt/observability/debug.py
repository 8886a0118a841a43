"""Operational routes: /healthz, /metrics and the admin-only connection listing.

The connection listing is the seed report's own request ("Test 2: Registry State"): an operator
sees, per socket, when it connected, when it was last heard from and whether it is idle.
"""

from __future__ import annotations

from typing import Any

import trio
from quart import Quart, Response

from ..http_common import ApiError, authenticate, json_response
from ..openapi import describe
from ..schemas import ConnectionsListing, Forbidden, HealthDown, HealthOk, Unauthorized


def register_debug_routes(app: Quart, services: Any) -> None:
    @app.get("/healthz")
    @describe(responses={200: HealthOk, 503: HealthDown}, public=True)
    async def healthz() -> Any:
        """Liveness and readiness: 503 while a dependency is down or the server drains."""
        checks = {"database": "ok" if await services.store.healthy() else "down"}
        broker_state = getattr(services.broker, "state", None)
        if broker_state is not None:
            checks["broker"] = broker_state
        if services.draining:
            return json_response({"status": "shutting_down", "checks": checks}, 503)
        if any(value != "ok" for value in checks.values()):
            return json_response({"status": "unavailable", "checks": checks}, 503)
        return json_response({"status": "ok", "checks": checks})

    @app.get("/metrics")
    @describe(
        responses={},
        public=True,
        text_responses={200: "Prometheus text exposition format (version 0.0.4)."},
    )
    async def metrics() -> Any:
        """Prometheus metrics of this process."""
        return Response(
            services.metrics.render(),
            content_type="text/plain; version=0.0.4; charset=utf-8",
        )

    @app.get("/api/v1/debug/websocket/connections")
    @describe(responses={200: ConnectionsListing, 401: Unauthorized, 403: Forbidden})
    async def debug_connections() -> Any:
        """Every open WebSocket of this process, with its idle time (admin token only)."""
        identity = authenticate(services.verifier)
        if not identity.is_admin:
            raise ApiError(403, "forbidden", "an admin token is required")
        registry = services.registry
        now = trio.current_time()
        interval = services.settings.ping_interval
        return json_response(
            {
                "total_connections": registry.total,
                "total_users": registry.total_users,
                "connections": [conn.snapshot(now, interval) for conn in registry],
            }
        )
