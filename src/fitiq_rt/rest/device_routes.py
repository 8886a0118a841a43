"""REST for APNs devices (CONTRACT.md §3): register (PUT), forget (DELETE), list (GET).

Registering works whether push is configured or not: the phone registers once, and an operator
may turn push on later. A token registered by another user moves to the caller (one phone, a new
sign-in), so a push never reaches the previous account's owner.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from quart import Quart, Response

from .. import events
from ..devices import (
    ENVIRONMENTS,
    MAX_TOKEN_HEX,
    MIN_TOKEN_HEX,
    PLATFORMS,
    device_tail,
    normalized_token,
)
from ..logconfig import get_logger
from .common import ApiError, authenticate, invalid, json_response, read_json_object
from .openapi import describe
from .schemas import (
    Device,
    DeviceList,
    DeviceNotFound,
    DeviceRegister,
    InvalidJson,
    PayloadTooLarge,
    Unauthorized,
    Unavailable,
    ValidationFailed,
)

if TYPE_CHECKING:
    from ..app import Services

log = get_logger("fitiq_rt.devices")

_TOKEN_RULE = f"device_token must be {MIN_TOKEN_HEX}-{MAX_TOKEN_HEX} hex digits"


def parse_registration(payload: dict[str, Any]) -> tuple[str, str]:
    """(platform, environment) from the PUT body, or a 422 naming the field."""
    platform = payload.get("platform")
    if platform not in PLATFORMS:
        raise invalid("platform is required and must be ios")
    environment = payload.get("environment", "production")
    if environment not in ENVIRONMENTS:
        raise invalid("environment must be production or sandbox")
    return platform, environment


def register_device_routes(app: Quart, services: Services) -> None:
    store = services.store

    @app.put("/api/v1/devices/<device_token>")
    @describe(
        request=DeviceRegister,
        responses={
            200: Device,
            201: Device,
            400: InvalidJson,
            401: Unauthorized,
            413: PayloadTooLarge,
            422: ValidationFailed,
            503: Unavailable,
        },
        path_formats={"device_token": "hex"},
    )
    async def put_device(device_token: str) -> Any:
        """Register an APNs device token of the caller.

        While none of the caller's sockets is open, each completed or failed meal log is pushed
        to the device. 201 when the device is new to the caller (also when it moves from another
        user, who loses it), 200 when it was already the caller's.
        """
        identity = authenticate(services.verifier)
        token = normalized_token(device_token)
        if token is None:
            raise invalid(_TOKEN_RULE)
        platform, environment = parse_registration(await read_json_object())
        device, created = await store.put_device(identity.user_id, token, platform, environment)
        if created:
            log.info(
                events.DEVICE_REGISTERED,
                user_id=identity.user_id,
                device=device_tail(token),
                environment=environment,
            )
        return json_response(device.to_json(), 201 if created else 200)

    @app.delete("/api/v1/devices/<device_token>")
    @describe(
        responses={401: Unauthorized, 404: DeviceNotFound, 503: Unavailable},
        empty_responses={204: "The device is forgotten; it gets no more pushes."},
        path_formats={"device_token": "hex"},
    )
    async def delete_device(device_token: str) -> Any:
        """Forget one of the caller's devices (sign-out); 404 when it is not the caller's."""
        identity = authenticate(services.verifier)
        token = normalized_token(device_token)
        removed = token is not None and await store.delete_device(identity.user_id, token)
        if not removed:
            raise ApiError(404, "not_found", "no such device")
        log.info(
            events.DEVICE_REMOVED,
            user_id=identity.user_id,
            device=device_tail(device_token),
            reason="unregistered",
        )
        return Response(b"", status=204)

    @app.get("/api/v1/devices")
    @describe(responses={200: DeviceList, 401: Unauthorized, 503: Unavailable})
    async def list_devices() -> Any:
        """List the caller's registered devices."""
        identity = authenticate(services.verifier)
        devices = await store.list_devices(identity.user_id)
        return json_response({"items": [device.to_json() for device in devices]})
