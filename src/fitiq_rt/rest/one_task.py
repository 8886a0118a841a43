"""Quart-Trio's HTTP connection, run in the request's own task when its body is small and sized.

Why: `TrioASGIHTTPConnection` opens a nursery per request with two tasks, one feeding the body
into the request and one running the handler, so that a client who disconnects cancels the
handler. That is a nursery, two spawns and their task switches on every request, for bodies of
at most a few KiB that have almost always arrived with the head. Here a request whose
Content-Length is within MAX_CONTENT_LENGTH reads its body first and then runs the handler in
the same task.

What changes for a client: a handler is not cancelled when its client disconnects. A meal-log
POST whose client went away after sending it is stored and handed to the dispatcher; cancelled,
it was mostly not stored at all (15 of 20 in test_meal_pipeline).

Everything else is Quart-Trio's: a chunked body, or one declared larger than the limit (a 413),
takes its two-task path; a body slower than BODY_TIMEOUT is a 408 at exactly BODY_TIMEOUT; the
response is sent under RESPONSE_TIMEOUT.
"""

from __future__ import annotations

from typing import Any

import trio
from quart.wrappers import Response
from quart_trio.asgi import TrioASGIHTTPConnection


class OneTaskHTTPConnection(TrioASGIHTTPConnection):
    """Runs a request with a small, sized body in one task (see the module's docstring)."""

    async def __call__(self, receive: Any, send: Any) -> None:
        length = declared_body_length(self.scope)
        limit = self.app.config["MAX_CONTENT_LENGTH"]
        if length is None or (limit is not None and length > limit):
            await super().__call__(receive, send)
            return
        request = self._create_request_from_scope(send)
        body_timeout = self.app.config["BODY_TIMEOUT"]
        with trio.move_on_after(_trio_seconds(body_timeout)) as waiting:
            if not await _read_body(request, receive):
                return  # the client went away before its body arrived: nobody to answer
        if waiting.cancelled_caught:
            request.body_timeout = 0  # the handler's read of the body answers 408 at once
        response = await self.app.handle_request(request)
        timeout = self.app.config["RESPONSE_TIMEOUT"]
        if isinstance(response, Response) and response.timeout != Ellipsis:
            timeout = response.timeout
        with trio.move_on_after(_trio_seconds(timeout)):
            await self._send_response(send, response)


async def _read_body(request: Any, receive: Any) -> bool:
    """Feed the body's messages into the request until it is complete; False on a disconnect."""
    while True:
        message = await receive()
        if message["type"] == "http.request":
            request.body.append(message.get("body", b""))
            if not message.get("more_body", False):
                request.body.set_complete()
                return True
        elif message["type"] == "http.disconnect":
            return False


def declared_body_length(scope: Any) -> int | None:
    """The body length a request's head declares: 0 without one, None when chunked."""
    for name, value in scope["headers"]:
        if name == b"transfer-encoding":
            return None
        if name == b"content-length":
            return int(value)  # h11 has refused a Content-Length that is not digits
    return 0


def _trio_seconds(seconds: float | None) -> float:
    """Quart's timeouts use None for "no limit"; trio's use infinity."""
    return float("inf") if seconds is None else seconds
