"""Wiring: build the services from Settings, and the ASGI app Hypercorn serves.

The ASGI entry serves REST through the Quart-Trio app and writes one `http.request` access-log
event per request. `/ws/meal-logs` never reaches it on a new connection (the front door serves
it on fitiq_rt's own transport); an upgrade sent later on a kept-alive REST connection does,
and is refused with a status that says to open a new connection.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import attrs
import trio
from quart import Quart, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from . import events
from .access_log import log_request
from .auth import TokenVerifier, resolve_secret
from .clock import wall_time
from .config import Settings
from .logconfig import get_logger
from .meals.dispatcher import Dispatcher
from .meals.processor import Processor, load_processor
from .meals.store import Store, StoreUnavailable, open_store
from .notifications import (
    Broker,
    CachedHistory,
    LatestSeqCache,
    LocalBroker,
    NotificationHistory,
    Notifier,
)
from .observability.metrics import Metrics
from .realtime.endpoint import (
    HEADERS_TOO_LARGE,
    UPGRADE_REQUIRED,
    WEBSOCKET_PATH,
    Refusal,
    refusal_response,
)
from .realtime.positions import PositionCheck, catch_up_until_done
from .realtime.registry import ConnectionLimits, Registry
from .realtime.session import SessionConfig, SessionDeps
from .rest.common import ApiError, error_response
from .rest.device_routes import register_device_routes
from .rest.meal_routes import register_meal_routes
from .rest.one_task import OneTaskHTTPConnection, declared_body_length
from .rest.openapi import install_openapi
from .rest.ops_routes import register_debug_routes
from .rest.schemas import MAX_BODY_BYTES

if TYPE_CHECKING:
    from .push.service import PushService

log = get_logger("fitiq_rt.app")

# Loosely typed on purpose: scopes here are plain dicts, and Hypercorn and Quart each type ASGI
# their own way.
ASGIApp = Callable[..., Awaitable[None]]


@attrs.define
class Services:
    """Everything a request or a socket needs, built once per process."""

    settings: Settings
    verifier: TokenVerifier
    registry: Registry
    metrics: Metrics
    store: Store
    broker: Broker
    notifier: Notifier
    dispatcher: Dispatcher
    position_check: PositionCheck
    session_deps: SessionDeps
    limits: ConnectionLimits
    push: PushService | None = None  # when FITIQ_APNS_KEY_FILE is set
    _draining: bool = attrs.field(default=False, init=False)

    @property
    def draining(self) -> bool:
        """True once the node began its graceful stop: readiness 503, new sockets refused."""
        return self._draining

    def start_draining(self) -> None:
        """One way only: a node that began to drain never takes new traffic again."""
        self._draining = True


def _make_fanout(
    settings: Settings, registry: Registry, store: Store
) -> tuple[Broker, NotificationHistory]:
    """The broker, and the history sessions read (cached when this node is the only publisher)."""
    if settings.redis_url:
        from .notifications.redis_broker import RedisBroker

        broker = RedisBroker(
            settings.redis_url,
            registry,
            functools.partial(catch_up_until_done, registry, store),
            backoff_max=settings.redis_retry_max,
            command_timeout=settings.redis_timeout,
        )
        return broker, store
    cache = LatestSeqCache()
    return LocalBroker(registry, cache), CachedHistory(store, cache)


def build_services(
    settings: Settings, *, store: Store | None = None, processor: Processor | None = None
) -> Services:
    registry = Registry()
    metrics = Metrics()
    metrics.set_connection_gauge(lambda: registry.total)
    store = store or open_store(
        settings.resolved_database_url,
        data_dir=settings.data_dir,
        pool_size=settings.db_pool_size,
        lease_seconds=settings.db_lease,
        timeout=settings.db_timeout,
    )
    broker, history = _make_fanout(settings, registry, store)
    push = _make_push(settings, store, metrics)
    notifier = Notifier(broker, metrics, push, publish_timeout=settings.publish_timeout)
    dispatcher = Dispatcher(
        store,
        processor or load_processor(settings.processor),
        notifier,
        metrics,
        workers=settings.workers,
        queue_size=settings.dispatch_queue,
        processing_timeout=settings.processing_timeout,
        recovery_interval=settings.recovery_interval,
        finish_retry_timeout=settings.finish_retry_timeout,
        claim_delay=settings.claim_delay,
        history_limit=settings.history_limit,
    )
    verifier = TokenVerifier(
        secret=resolve_secret(settings),
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
        leeway=settings.jwt_leeway,
    )
    deps = SessionDeps(
        config=SessionConfig(
            ping_interval=settings.ping_interval,
            idle_timeout=settings.idle_timeout,
            max_messages_per_second=settings.max_messages_per_second,
            history_limit=settings.history_limit,
            close_timeout=settings.close_timeout,
            token_warning=settings.token_warning,
        ),
        registry=registry,
        history=history,
        metrics=metrics,
        wall_clock=wall_time,
        verify_token=verifier.verify,
    )
    return Services(
        settings=settings,
        verifier=verifier,
        registry=registry,
        metrics=metrics,
        store=store,
        broker=broker,
        notifier=notifier,
        dispatcher=dispatcher,
        position_check=PositionCheck(
            registry, store, metrics, interval=settings.position_check_interval
        ),
        session_deps=deps,
        limits=ConnectionLimits(
            total=settings.max_connections,
            per_user=settings.max_connections_per_user,
            per_ip=settings.max_connections_per_ip,
        ),
        push=push,
    )


def _make_push(settings: Settings, store: Store, metrics: Metrics) -> PushService | None:
    """The push service, or None when push is off (its libraries are not even imported)."""
    if not settings.push_enabled:
        return None
    from .push.setup import push_service_from_settings

    return push_service_from_settings(settings, store, metrics)


@asynccontextmanager
async def running(services: Services) -> AsyncIterator[Services]:
    """Open the store, start its upkeep, the broker and the dispatcher; undo it all on exit."""
    await services.store.open()
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(services.store.run)
            await nursery.start(services.broker.run)
            await nursery.start(services.dispatcher.run)
            await nursery.start(services.position_check.run)
            if services.push is not None:
                await nursery.start(services.push.run)
            yield services
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await services.store.close()


def create_quart_app(services: Services) -> Quart:
    """The REST app: meal-log and operational routes, the contract's errors, /openapi.json."""
    app = QuartTrio("fitiq_rt")
    app.asgi_http_class = OneTaskHTTPConnection
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = True

    @app.errorhandler(ApiError)
    async def api_error(error: ApiError) -> Any:
        return error_response(error.status, error.code, error.message)

    @app.errorhandler(StoreUnavailable)
    async def store_unavailable(error: StoreUnavailable) -> Any:
        return error_response(503, "unavailable", "the database is unavailable; retry")

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Any:
        status = error.code or 500
        code = {
            404: "not_found",
            405: "method_not_allowed",
            413: "payload_too_large",
            400: "bad_request",
        }.get(status, "http_error")
        allow = dict(error.get_headers()).get("Allow")
        response = error_response(status, code, _http_error_message(status, allow, error))
        if allow:  # a 405 names the methods the path does accept (RFC 9110 §15.5.6)
            response.headers["Allow"] = allow
        return response

    @app.errorhandler(Exception)
    async def unexpected(error: Exception) -> Any:
        log.error(events.HTTP_ERROR, error=repr(error)[:500], exc_info=error)
        return error_response(500, "internal", "an unexpected error occurred")

    register_meal_routes(app, services)
    register_device_routes(app, services)
    register_debug_routes(app, services)
    install_openapi(app)
    return app


def _http_error_message(status: int, allow: str | None, error: HTTPException) -> str:
    """One short line a client developer can act on (not Werkzeug's paragraph)."""
    target = f"{request.method} {request.path}"
    if status == 404:
        return f"no route for {target}"
    if status == 405:
        return f"{target} is not allowed; this path takes {allow}"
    return error.description or error.name


def create_asgi_app(services: Services) -> ASGIApp:
    quart_app: ASGIApp = create_quart_app(services)

    max_header_bytes = services.settings.max_header_bytes

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind != "lifespan" and _header_bytes(scope) > max_header_bytes:
            await _refuse_large_headers(scope, send)
        elif kind == "websocket":
            await _websocket_not_here(scope, send)
        elif kind == "http" and scope.get("path") == WEBSOCKET_PATH:
            await _upgrade_required(scope, send)
        elif kind == "http":
            await _with_access_log(quart_app, services, scope, receive, send)
        else:
            await quart_app(scope, receive, send)

    return app


async def _with_access_log(
    quart_app: ASGIApp, services: Services, scope: dict[str, Any], receive: Any, send: Any
) -> None:
    started = time.perf_counter()
    status = 0
    sent = 0
    body_in = declared_body_length(scope) == 0  # the request's body has all reached the app

    async def receive_and_note() -> dict[str, Any]:
        nonlocal body_in
        message: dict[str, Any] = await receive()
        if message["type"] == "http.request" and not message.get("more_body", False):
            body_in = True
        return message

    async def send_and_count(message: dict[str, Any]) -> None:
        nonlocal status, sent
        if message["type"] == "http.response.start":
            status = message["status"]
            if not body_in:
                # An answer before the body (a 413, a 401 on a POST): the connection cannot carry
                # another request, so Hypercorn closes it after this response. Saying so keeps a
                # client from sending its next request into the close (RFC 9112 §9.6).
                message = {**message, "headers": [*message["headers"], _CONNECTION_CLOSE]}
        elif message["type"] == "http.response.body":
            sent += len(message.get("body", b""))
            if not message.get("more_body", False):
                # Hypercorn starts the connection's keep-alive timer from inside this send, and
                # quart-trio cancels the request's nursery as soon as the response ends: unshielded,
                # the timer dies at once, so an idle keep-alive connection was never closed (not
                # by keep_alive_timeout, not at shutdown, which then waited its full timeout).
                with trio.CancelScope(shield=True):
                    await send(message)
                return
        await send(message)

    try:
        await quart_app(scope, receive_and_note, send_and_count)
    finally:
        services.metrics.http_requests.labels(f"{status // 100}xx").inc()
        log_request(scope.get("method"), scope_target(scope), status, started=started, sent=sent)


_CONNECTION_CLOSE = (b"connection", b"close")


def _header_bytes(scope: dict[str, Any]) -> int:
    """h11's limit only covers heads that arrive in pieces, and the front door only reads a
    connection's first head; this covers whole heads of later requests on a kept-alive one."""
    return sum(len(name) + len(value) + 4 for name, value in scope.get("headers", ()))


async def _refuse_large_headers(scope: dict[str, Any], send: Any) -> None:
    await _send_refusal(scope, send, HEADERS_TOO_LARGE)


async def _upgrade_required(scope: dict[str, Any], send: Any) -> None:
    """A plain request for the WebSocket path on a kept-alive connection: 426, as on a new one."""
    await _send_refusal(scope, send, UPGRADE_REQUIRED)


_REUSED_CONNECTION = Refusal(
    400, "invalid_handshake", "invalid_request", "open /ws/meal-logs on a new connection"
)
_NO_SUCH_WEBSOCKET = Refusal(404, "not_found", "not_found", "no WebSocket endpoint at this path")


async def _websocket_not_here(scope: dict[str, Any], send: Any) -> None:
    """An upgrade that reached Hypercorn: another path (404), or a reused connection (400)."""
    reused = scope.get("path") == WEBSOCKET_PATH
    await _send_refusal(scope, send, _REUSED_CONNECTION if reused else _NO_SUCH_WEBSOCKET)


async def _send_refusal(scope: dict[str, Any], send: Any, refusal: Refusal) -> None:
    """Answer over ASGI with the same response the front door and the handshake send."""
    started = time.perf_counter()
    response = refusal_response(refusal)
    prefix = "websocket." if scope["type"] == "websocket" else ""
    headers = [(k.lower().encode(), v.encode()) for k, v in response.headers.raw_items()]
    start = {"type": f"{prefix}http.response.start", "status": refusal.status, "headers": headers}
    await send(start)
    await send({"type": f"{prefix}http.response.body", "body": response.body})
    method = scope.get("method", "GET")
    log_request(
        method, scope_target(scope), refusal.status, started=started, sent=len(response.body)
    )


def scope_target(scope: dict[str, Any]) -> str:
    """The request target (path and query) of an ASGI scope."""
    path = scope.get("path", "")
    query = scope.get("query_string", b"")
    return f"{path}?{query.decode('latin-1')}" if query else path
