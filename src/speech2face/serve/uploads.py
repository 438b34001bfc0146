"""Uploads capped while they stream in: ASGI middleware that refuses a body too large (413), too
slow (408) or arriving while too many bytes are held already (503), before the app reads it."""

from __future__ import annotations

import asyncio
import time
from typing import Optional

from fastapi.responses import JSONResponse
from starlette.requests import Request

from .metrics import Metrics

BODY_SECONDS = 20.0  # s: an upload must have arrived this long after its request began
MAX_BYTES_IN_FLIGHT = 160 * 1024 * 1024  # bytes of uploads held at once (8 of the largest)
BODY_TAIL = "speech2face.body_tail"  # scope key: the last bytes of the body, to tell a cut-short form
BODY_TAIL_BYTES = 256


class UploadRefused(Exception):
    """The body was refused while it arrived; the answer has been sent."""


class UploadLimit:
    """ASGI middleware, around everything: a body over ``max_bytes`` is refused as it streams in
    (413); one that has not fully arrived ``body_seconds`` after the request began is refused
    (408); and bodies held at once — declared or received, kept until their answer is sent — may
    total ``max_in_flight`` bytes, beyond which a new upload gets 503 at once. So neither slow
    senders nor a burst of large uploads can hold the server's time or memory."""

    def __init__(self, app, max_bytes: int, metrics: Optional[Metrics] = None, body_seconds: float = BODY_SECONDS,
                 max_in_flight: int = MAX_BYTES_IN_FLIGHT) -> None:
        self.app, self.max_bytes, self.metrics = app, max_bytes, metrics
        self.body_seconds, self.max_in_flight, self.in_flight = body_seconds, max_in_flight, 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        declared = int(length) if length is not None and length.isdigit() else 0
        if declared > self.max_bytes:
            return await self._reject(send, 413, "too large", f"upload larger than {self.max_bytes // (1024 * 1024)} MB")
        if declared and self.in_flight + declared > self.max_in_flight:
            return await self._reject(send, 503, "busy", "the server is busy receiving other uploads; try again "
                                                        "in a moment")
        held = declared  # bytes this request counts against max_in_flight
        self.in_flight += held
        received, started, refused, body_done = 0, False, False, False
        deadline = time.monotonic() + self.body_seconds

        async def refuse(status: int, reason: str, message: str):
            nonlocal refused
            refused = True
            if not started:  # answer now; the app's own answer (if any) is dropped
                await self._reject(send, status, reason, message)
            raise UploadRefused

        async def limited_receive():
            nonlocal received, body_done, held
            if body_done or refused:
                return await receive()  # after the body: waiting for a disconnect, no deadline
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                await refuse(408, "time limit", f"the upload did not arrive within {self.body_seconds:g} s")
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                scope[BODY_TAIL] = (scope.get(BODY_TAIL, b"") + chunk[-BODY_TAIL_BYTES:])[-BODY_TAIL_BYTES:]
                received += len(chunk)
                body_done = not message.get("more_body", False)
                if received > self.max_bytes:
                    await refuse(413, "too large", f"upload larger than {self.max_bytes // (1024 * 1024)} MB")
                if received > held:  # no Content-Length (chunked): counted as it comes
                    self.in_flight += received - held
                    held = received
                    if self.in_flight > self.max_in_flight:
                        await refuse(503, "busy", "the server is busy receiving other uploads; try again in a moment")
            return message

        async def guarded_send(message):
            nonlocal started
            if refused:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except UploadRefused:
            pass
        finally:
            self.in_flight -= held

    async def _reject(self, send, status: int, reason: str, message: str) -> None:
        if self.metrics is not None:
            self.metrics.refusals.labels(reason=reason).inc()
            self.metrics.requests.labels(route="upload", status=str(status)).inc()
        await JSONResponse({"error": message}, status_code=status, headers={"Connection": "close"})(
            {"type": "http"}, None, send)


def cut_short_form(request: Request) -> bool:
    """Whether a multipart/form-data body ended without its closing boundary."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data") or "boundary=" not in content_type:
        return False
    boundary = content_type.split("boundary=", 1)[1].split(";")[0].strip().strip('"').encode()
    return b"--" + boundary + b"--" not in request.scope.get(BODY_TAIL, b"")
