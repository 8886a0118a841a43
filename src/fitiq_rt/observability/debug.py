"""Operational routes: /healthz, /metrics and the admin-only connection listing.

The connection listing is the seed report's own request ("Test 2: Registry State"): an operator
sees, per socket, when it connected, when it was last heard from and whether it is idle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio
from quart import Quart, Response

from ..http_common import ApiError, authenticate, json_response
from ..openapi import describe
from ..schemas import ConnectionsListing, Forbidden, HealthDown, HealthOk, Ready, Unauthorized

if TYPE_CHECKING:
    from ..app import Services


def register_debug_routes(app: Quart, services: Services) -> None:
    async def checks() -> dict[str, str]:
        found = {"database": "ok" if await services.store.healthy() else "down"}
        broker_state = getattr(services.broker, "state", None)
        if broker_state is not None:
            found["broker"] = broker_state
        return found

    @app.get("/healthz")
    @describe(responses={200: HealthOk}, public=True)
    async def healthz() -> Any:
        """Liveness: 200 while the process answers, whatever its dependencies say.

        Restarting a node cures nothing when the database or Redis is down, so a liveness probe
        must not fail on them; `ready` and the checks say what /readyz would answer.
        """
        found = await checks()
        ready = not services.draining and found["database"] == "ok"
        return json_response({"status": "ok", "ready": ready, "checks": found})

    @app.get("/readyz")
    @describe(responses={200: Ready, 503: HealthDown}, public=True)
    async def readyz() -> Any:
        """Readiness, for load balancers: 503 while draining or while the database is down.

        A Redis outage does not make a node unready: it is shared, so every node would leave
        rotation at once, turning degraded cross-node fan-out into a full outage.
        """
        found = await checks()
        if services.draining:
            return json_response({"status": "shutting_down", "checks": found}, 503)
        if found["database"] != "ok":
            return json_response({"status": "unavailable", "checks": found}, 503)
        return json_response({"status": "ready", "checks": found})

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
