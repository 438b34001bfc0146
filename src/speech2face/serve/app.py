"""The web page and HTTP API: one model loaded once, concurrent reconstructions joined into
batches (``serve.batching``), each request with a time limit, uploads capped while they stream
in, nothing a user uploads written to disk, and ``/metrics`` for operators (``serve.metrics``).

    speech2face serve --host 127.0.0.1 --port 8000 [--timeout 30]
"""

from __future__ import annotations

import asyncio
import base64
import functools
import io
import sys
import time
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
from ..face_reading import read_drawing
from ..limits import (CLIP_SECONDS, MAX_CLIP_SECONDS, MAX_MATCH_PHOTOS, MAX_VARIATIONS, MIN_CLIP_SECONDS,
                      SERVE_TIMEOUT_SECONDS as TIMEOUT_SECONDS)
from ..runtime import available_cpus
from .batching import Batcher, ClientGone, Expired, Job
from .metrics import CountRequests, Metrics, refusal_reason
from .uploads import BODY_SECONDS, UploadLimit, cut_short_form

MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # 20 MB
MAX_ANALYSED_SECONDS = 30.0  # s of audio decoded per request; the rest is ignored
MAX_MATCH_PIXELS = 100_000_000  # pixels of all the photos of one /api/match request (each at most 40 MP)
MAX_BATCH = 16  # reconstructions run together
MAX_BATCH_WAIT = 0.01  # s a batch waits for more requests after its first
NOTICE = ("The face is a guess at a typical face for what the voice suggests (sex, age, broad appearance). "
          "It is not the speaker's face and must not be used to identify or profile anyone.")


def mount_page_files(app: FastAPI) -> None:
    """What the page runs on the user's device, served from the package itself: its script and
    onnxruntime-web under /static, the ONNX graphs under /models (see ``serve.site``)."""
    from starlette.staticfiles import StaticFiles

    from .site import page_folders

    for url, folder in page_folders().items():
        app.mount(f"/{url}", StaticFiles(directory=str(folder)), name=url)


def _png(image: np.ndarray) -> bytes:
    """Lossless, at zlib's fastest level: 2 ms instead of 10 ms for a 224 px face, 15 % larger (~37 KB)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def create_app(load: Optional[Callable] = None, max_upload_bytes: int = MAX_UPLOAD_BYTES,
               max_seconds: float = MAX_ANALYSED_SECONDS, workers: Optional[int] = None,
               timeout: float = TIMEOUT_SECONDS, max_batch: int = MAX_BATCH, max_wait: float = MAX_BATCH_WAIT,
               upload_timeout: float = BODY_SECONDS) -> FastAPI:
    """The app; ``load`` returns the Speech2Face model (default: the shipped weights on CPU)."""
    metrics = Metrics()

    # uploads stay in memory (starlette spools parts over 1 MB to a temporary file): they are at
    # most max_upload_bytes, and nothing a user sends is to touch the disk
    MultiPartParser.spool_max_size = max(MultiPartParser.spool_max_size, max_upload_bytes + 1)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        from ..pipeline import load_model

        app.state.model = (load or (lambda: load_model(device="cpu")))()
        app.state.limiter = anyio.CapacityLimiter(workers or available_cpus())
        app.state.batcher = Batcher(reconstruct_batch, metrics, max_batch, max_wait)
        app.state.batcher.start()
        yield
        await app.state.batcher.stop()

    # /docs (Swagger UI) from assets shipped in fastapi-offline: it works with no network. ReDoc is
    # left out: its page fetches a logo from a CDN.
    app = FastAPIOffline(title="speech2face", version=__import__("speech2face").__version__, lifespan=lifespan,
                         redoc_url=None, description="Speech → a canonical face of the speaker. " + NOTICE)

    app.state.metrics = metrics

    app.add_middleware(CountRequests, metrics=metrics)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError):
        metrics.refusals.labels(reason="bad request").inc()
        if cut_short_form(request):
            return JSONResponse({"error": "the multipart/form-data body is cut short: its closing boundary is missing "
                                          "(was the upload interrupted?)"}, status_code=400)
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

    def reconstruct_batch(jobs: list[Job]) -> list:
        """One batch (one clip length, one number of faces) through the CLI's batched path:
        (Reconstruction, its faces as PNG bytes, what the drawn face reads as — JSON answers only)
        or the InputError, per upload. PNG encoding and face reading run side by side (zlib and
        onnxruntime release the GIL), off the event loop."""
        from concurrent.futures import ThreadPoolExecutor

        model = app.state.model
        results = model.reconstruct_each([j.data for j in jobs], duration=jobs[0].duration, max_seconds=max_seconds,
                                         variations=jobs[0].variations)
        good = [k for k, r in enumerate(results) if not isinstance(r, InputError)]
        read = [k for k in good if jobs[k].read_face]
        with ThreadPoolExecutor(max(1, min(len(good), model.workers))) as pool:
            pngs = dict(zip(good, pool.map(lambda k: [_png(v) for v in results[k].variations], good)))
            faces = dict(zip(read, pool.map(lambda k: read_drawing(results[k].image, model.renderer.face_box), read)))
        return [r if isinstance(r, InputError) else (r, pngs[k], faces.get(k)) for k, r in enumerate(results)]

    def error(exc: InputError) -> JSONResponse:
        message = str(exc).replace("<bytes>: ", "")
        metrics.refusals.labels(reason=refusal_reason(422, message)).inc()
        return JSONResponse({"error": message}, status_code=422)

    def busy() -> JSONResponse:
        metrics.refusals.labels(reason="time limit").inc()
        return JSONResponse({"error": f"the server is busy: no answer within its time limit of {timeout:g} s; "
                                      "try again later"}, status_code=503)

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return (resources.files("speech2face") / "serve" / "static" / "index.html").read_text()

    mount_page_files(app)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(metrics.text(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok", "model_loaded": getattr(app.state, "model", None) is not None}

    @app.post("/api/reconstruct", responses={200: {"content": {"image/png": {}, "application/json": {}}}})
    async def api_reconstruct(request: Request,
                              audio: UploadFile = File(..., description="speech, any common audio format"),
                              format: str = Query("png", pattern="^(png|json)$"),
                              duration: float = Query(CLIP_SECONDS, ge=MIN_CLIP_SECONDS, le=MAX_CLIP_SECONDS),
                              variations: int = Query(1, ge=1, le=MAX_VARIATIONS,
                                                      description="faces to draw (json): the most likely, then samples")):
        if len((await request.form()).getlist("audio")) > 1:
            return JSONResponse({"error": "form field 'audio': send one recording per request, not several"},
                                status_code=422)
        data = await audio.read()
        job = Job(data, duration, variations, time.monotonic() + timeout, request.is_disconnected, format == "json")
        try:
            result, pngs, drawn_face = await asyncio.wait_for(app.state.batcher.submit(job), timeout)
        except InputError as exc:
            return error(exc)
        except (asyncio.TimeoutError, Expired):
            return busy()
        except ClientGone:  # nobody reads this answer (499: "client closed request", as nginx logs it)
            return JSONResponse({"error": "client disconnected"}, status_code=499)
        png = pngs[0]
        used = {"spans_seconds": [[round(a, 2), round(b, 2)] for a, b in result.spans],
                "input_seconds": round(result.input_seconds, 2), "speech_seconds": round(result.speech_seconds, 2),
                "analysed_up_to_seconds": round(result.analysed_seconds, 2), "text": result.used, "notes": result.notes}
        if format == "png":
            spans = ", ".join(f"{a:.1f}-{b:.1f}" for a, b in result.spans)  # ASCII: HTTP headers are latin-1
            return Response(png, media_type="image/png",
                            headers={"X-Speech-Used": f"{spans} s of {result.input_seconds:.1f} s"
                                     + (f" (first {result.analysed_seconds:.1f} s analysed)"
                                        if result.analysed_seconds < result.input_seconds - 0.05 else "")})
        from ..voice_attributes import describe

        told = result.voice_attributes
        return {"image_png_base64": base64.b64encode(png).decode(), "descriptor": result.descriptor.round(5).tolist(),
                "variations_png_base64": [base64.b64encode(p).decode() for p in pngs[1:]],
                "voice_attributes": told, "voice_attributes_text": describe(told) if told else None,
                "drawn_face_attributes": drawn_face, "used": used, "notice": NOTICE}

    @app.post("/api/match")
    async def api_match(audio: UploadFile = File(...), faces: list[UploadFile] = File(...)):
        """Rank face photos (at most MAX_MATCH_PHOTOS) by how well they fit the voice (cosine of descriptors)."""
        from ..matching import rank_faces

        if len(faces) > MAX_MATCH_PHOTOS:
            metrics.refusals.labels(reason="too many photos").inc()
            return JSONResponse({"error": f"form field 'faces': at most {MAX_MATCH_PHOTOS} photos per request, "
                                          f"not {len(faces)}"}, status_code=422)
        voice = await audio.read()
        photos = [(f.filename or f"face{i}", await f.read()) for i, f in enumerate(faces)]
        pixels = sum(_pixels(data) for _, data in photos)
        if pixels > MAX_MATCH_PIXELS:
            metrics.refusals.labels(reason="too large").inc()
            return JSONResponse({"error": f"form field 'faces': at most {MAX_MATCH_PIXELS // 1_000_000} megapixels "
                                          f"in all per request, these photos hold {pixels / 1e6:.0f}"}, status_code=413)
        deadline = time.monotonic() + timeout  # the work stops there too, not only the wait for it
        try:
            ranking = await asyncio.wait_for(run(rank_faces, app.state.model, voice, photos, max_seconds, deadline),
                                             timeout)
        except InputError as exc:
            return error(exc)
        except (asyncio.TimeoutError, TimeoutError):
            return busy()
        return {"ranking": ranking, "notice": NOTICE}

    return UploadLimit(app, max_upload_bytes, metrics, upload_timeout)  # type: ignore[return-value]


def _json_errors_protocol():
    """uvicorn's h11 protocol, answering a request h11 cannot parse (Content-Length: -5, two
    Content-Lengths that differ) with the API's one error shape, not plain text."""
    import json

    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class JsonErrorsH11Protocol(H11Protocol):
        def send_400_response(self, msg: str) -> None:
            body = json.dumps({"error": "malformed HTTP request (its headers or framing could not be read)"}).encode()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                       (b"connection", b"close")]
            self.transport.write(self.conn.send(h11.Response(status_code=400, headers=headers, reason=b"Bad Request")))
            self.transport.write(self.conn.send(h11.Data(data=body)))
            self.transport.close()

    return JsonErrorsH11Protocol


def _pixels(data: bytes) -> int:
    """Pixels of an uploaded image from its header (nothing decoded); 0 where it is no image (the
    ranking then says so for that photo)."""
    from PIL import Image

    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                return img.width * img.height
    except Exception:
        return 0


def _validation_message(error: dict) -> str:
    """One FastAPI validation error in words: which query parameter or form field, and what is wrong."""
    where, *path = error["loc"]
    name = ".".join(str(p) for p in path) or "body"
    kind = {"query": "query parameter", "body": "form field", "header": "header", "path": "path parameter"}.get(where, where)
    hint = " (send multipart/form-data)" if where == "body" else ""
    message = error["msg"]
    if "Expected UploadFile" in message:  # pydantic's words name a Python class
        message, hint = "expected a file, got a text value", " (send it as a file part, with a filename)"
    return f"{kind} {name!r}: {message}{hint}"


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


def serve(host: str = "127.0.0.1", port: int = 8000, timeout: float = TIMEOUT_SECONDS, bfloat16: bool = False,
          upload_timeout: float = BODY_SECONDS, engine: str = "auto") -> None:
    """Serve the page and the API; ``bfloat16``: GE2E's LSTM in bfloat16 (see the speaker module);
    ``engine``: what runs the networks (``speech2face.load_model``)."""
    import uvicorn

    from ..pipeline import ENGINES, load_model

    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r}: use {', '.join(ENGINES)}")
    check_port(host, port)
    for flag, value in (("--timeout", timeout), ("--upload-timeout", upload_timeout)):
        if not value > 0:
            raise InputError(f"{flag} {value:g}: a time limit is a positive number of seconds")
    load = None if engine == "auto" else functools.partial(load_model, device="cpu", engine=engine)
    if bfloat16:
        from ..models.speaker_encoder import cpu_has_bfloat16

        if not cpu_has_bfloat16():
            print("warning: --bf16 on a CPU without bfloat16 units (AMX, AVX512-BF16): it will be slower, "
                  "not faster", file=sys.stderr)
        load = functools.partial(load_model, device="cpu", bfloat16=True, engine=engine)
    uvicorn.run(create_app(load, timeout=timeout, upload_timeout=upload_timeout), host=host, port=port,
                log_level="info", http=_json_errors_protocol())
