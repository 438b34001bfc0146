"""The web app against a real server on loopback: API success and bad input (each a 4xx with a
clear JSON error, the server still serving), streaming upload limit, concurrency, match, and
the page in headless Chromium — upload, and recording through a fake microphone."""

from __future__ import annotations

import io
import socket
import struct
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import BROWSER_ARGS, PAIRS, need_chromium

httpx = pytest.importorskip("httpx")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(*flags: str):
    """`speech2face serve` with ``flags`` on a free loopback port, once its model is loaded:
    (base URL, process); stopped on exit."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "speech2face", "serve", "--port", str(port), *flags],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).json()["model_loaded"]:
                break
        except Exception:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("server did not start: " + proc.stderr.read().decode()[-2000:])
    try:
        yield base, proc
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def server(shared_data):
    with serving() as running:
        yield running


def clip_bytes(index: int = 0) -> bytes:
    return sorted((PAIRS / "audio").glob("*.opus"))[index].read_bytes()


def wav_bytes(wave: np.ndarray, rate: int = 16_000) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, wave, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def post(base: str, data: bytes, name: str = "clip.opus", field: str = "audio", fmt: str = "png"):
    return httpx.post(f"{base}/api/reconstruct?format={fmt}", files={field: (name, data)}, timeout=60)


def alive(base: str) -> bool:
    return httpx.get(f"{base}/healthz", timeout=5).json()["status"] == "ok"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def test_reconstruct_png_and_json(server):
    base, _ = server
    r = post(base, clip_bytes(0))
    assert r.status_code == 200 and r.headers["content-type"] == "image/png" and r.content[:4] == b"\x89PNG"
    r = post(base, clip_bytes(1), fmt="json")
    body = r.json()
    assert r.status_code == 200 and len(body["descriptor"]) == 128 and body["image_png_base64"]
    assert "not the speaker's face" in body["notice"]
    assert body["drawn_face_attributes"]["gender"] in ("male", "female") and body["drawn_face_attributes"]["age_range"]
    told = body["voice_attributes"]
    assert abs(told["gender"]["male"] + told["gender"]["female"] - 1) < 1e-3
    assert told["age"]["interval_80"][0] < told["age"]["years"] < told["age"]["interval_80"][1]
    assert body["voice_attributes_text"].split(",")[0].endswith(" %)") and body["variations_png_base64"] == []
    assert body["used"]["spans_seconds"] == [[0.0, 6.0]] and body["used"]["input_seconds"] == 6.0
    assert body["used"]["text"] == "0.0–6.0 s of 6.0 s" and body["used"]["notes"] == []
    assert httpx.get(f"{base}/openapi.json").json()["paths"]["/api/reconstruct"]


def test_variations_and_voice_attributes(server):
    base, _ = server
    r = httpx.post(f"{base}/api/reconstruct?format=json&variations=3", files={"audio": ("c.opus", clip_bytes(2))}, timeout=60)
    body = r.json()
    assert r.status_code == 200 and len(body["variations_png_base64"]) == 2
    faces = [body["image_png_base64"]] + body["variations_png_base64"]
    assert len(set(faces)) == 3  # three different faces
    assert body["voice_attributes"]["ethnicity"]["drawn_as"] in body["voice_attributes"]["ethnicity"]


@pytest.mark.parametrize("value", ["0", "100", "abc", "2.5", "-1"])
def test_bad_variations_are_a_clear_422(server, value):
    base, _ = server
    r = httpx.post(f"{base}/api/reconstruct?format=json&variations={value}", files={"audio": ("c.opus", clip_bytes(0))},
                   timeout=60)
    assert r.status_code == 422 and "query parameter 'variations'" in r.json()["error"]


@pytest.mark.parametrize("kind", ["noise", "tone"])
def test_noise_and_tone_are_refused(server, kind):
    base, _ = server
    t = np.arange(6 * 16_000) / 16_000
    wave = 0.1 * np.random.default_rng(2).standard_normal(t.size) if kind == "noise" else 0.3 * np.sin(2 * np.pi * 440 * t)
    r = post(base, wav_bytes(wave.astype(np.float32)), name=f"{kind}.wav", fmt="json")
    assert r.status_code == 422 and r.json()["error"].startswith("no speech found")


def test_long_upload_reports_the_seconds_used(server):
    base, _ = server
    import soundfile as sf

    wave = np.concatenate([sf.read(io.BytesIO(clip_bytes(i)), dtype="float32")[0] for i in (0, 0, 0)])  # 18 s, one voice
    r = post(base, wav_bytes(wave), name="long.wav", fmt="json")
    assert r.status_code == 200 and r.json()["used"]["spans_seconds"] == [[0.0, 6.0], [6.0, 12.0], [12.0, 18.0]]
    r = post(base, wav_bytes(wave), name="long.wav")
    assert r.headers["x-speech-used"] == "0.0-6.0, 6.0-12.0, 12.0-18.0 s of 18.0 s"


def test_errors_name_query_parameters_and_form_fields(server):
    base, _ = server
    r = httpx.post(f"{base}/api/reconstruct?format=gif", files={"audio": ("c.opus", clip_bytes(0))}, timeout=60)
    assert r.status_code == 422 and r.json()["error"].startswith("query parameter 'format'"), r.text
    r = httpx.post(f"{base}/api/reconstruct?duration=60", files={"audio": ("c.opus", clip_bytes(0))}, timeout=60)
    assert r.json()["error"].startswith("query parameter 'duration'")
    r = post(base, clip_bytes(0), field="file")
    assert r.json()["error"].startswith("form field 'audio'") and "multipart/form-data" in r.json()["error"]
    r = post(base, b"\x00garbage" * 500, name="x.m4a")
    error = r.json()["error"]
    assert "not a readable audio file" in error and "<_io" not in error and "Errno" not in error and "<none>" not in error


@pytest.mark.parametrize("case", ["empty", "wrong_field", "text", "truncated", "tenth_second", "silence"])
def test_bad_input_is_a_clear_4xx(server, case):
    base, _ = server
    speech = clip_bytes(2)
    if case == "empty":
        r = post(base, b"")
        expected = "empty"
    elif case == "wrong_field":
        r = post(base, speech, field="file")
        expected = "audio"
    elif case == "text":
        r = post(base, b"hello, this is not audio\n" * 100, name="notes.wav")
        expected = "not a readable audio file"
    elif case == "truncated":
        r = post(base, speech[:300], name="cut.opus")
        expected = "readable|no audio|too short"
    elif case == "tenth_second":
        r = post(base, wav_bytes(np.full(1600, 0.3, np.float32)), name="short.wav")
        expected = "too short"
    else:
        r = post(base, wav_bytes(np.zeros(16_000 * 3, np.float32)), name="silence.wav")
        expected = "silent"
    assert 400 <= r.status_code < 500, r.text
    import re

    assert re.search(expected, r.json()["error"]), r.json()
    assert alive(base)


@pytest.mark.slow
def test_eight_channel_audio_is_mixed_down_not_a_crash(server, speech_wave):
    """ch8.wav (8 channels) used to kill the server (SIGSEGV in PyAV): reconstruct and match
    answer, and the server goes on serving."""
    base, proc = server
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.repeat(speech_wave[:, None], 8, axis=1), 16_000, format="WAV", subtype="PCM_16")
    r = post(base, buf.getvalue(), name="ch8.wav", fmt="json")
    assert r.status_code == 200, r.text
    noise = wav_bytes(np.random.default_rng(0).uniform(-0.1, 0.1, (16_000, 8)).astype(np.float32))
    r = post(base, noise, name="ch8.wav")
    assert r.status_code == 422 and set(r.json()) == {"error"}
    r = httpx.post(f"{base}/api/match", timeout=60, files=[("audio", ("ch8.wav", buf.getvalue())),
                                                           ("faces", ("blank.png", _blank_png()))])
    assert r.status_code == 200, r.text
    assert proc.poll() is None and alive(base)


def test_every_error_has_one_json_shape(server):
    """404, 405, a malformed multipart body, a non-image and a 1 px image among match photos: each
    a JSON {"error": …} naming the problem in words, no Python object reprs, no 500."""
    base, _ = server
    for response in (httpx.get(f"{base}/no/such/page", timeout=10), httpx.get(f"{base}/api/reconstruct", timeout=10)):
        assert response.status_code in (404, 405) and set(response.json()) == {"error"}
    bad = httpx.post(f"{base}/api/reconstruct", content=b"--xx\r\nnonsense", timeout=10,
                     headers={"content-type": "multipart/form-data; boundary=yy"})
    assert 400 <= bad.status_code < 500 and set(bad.json()) == {"error"}
    tiny = io.BytesIO()
    __import__("PIL.Image").Image.new("RGB", (1, 1)).save(tiny, format="PNG")
    r = httpx.post(f"{base}/api/match", timeout=60, files=[("audio", ("c.opus", clip_bytes(0))),
                                                           ("faces", ("notes.txt", b"not an image")),
                                                           ("faces", ("dot.png", tiny.getvalue()))])
    assert r.status_code == 200, r.text
    errors = {e["name"]: e["error"] for e in r.json()["ranking"]}
    assert "not an image format" in errors["notes.txt"] and "BytesIO" not in errors["notes.txt"]
    assert "too small" in errors["dot.png"]


@pytest.mark.slow
def test_memory_stays_bounded_over_hundreds_of_varied_requests(server):
    """Reconstructions (6 s and 3 s), matches with a 9-megapixel faceless photo, and broken uploads:
    after the first requests have warmed the models, 160 more leave the server's RSS within 150 MB."""
    base, proc = server
    rss_mb = lambda: int(open(f"/proc/{proc.pid}/status").read().split("VmRSS:")[1].split()[0]) / 1024  # noqa: E731
    faces = sorted((PAIRS / "faces").glob("*.jpg"))
    buf = io.BytesIO()
    __import__("PIL.Image").Image.new("RGB", (3000, 3000), (200, 180, 160)).save(buf, format="PNG")
    big = buf.getvalue()

    def request(i: int) -> None:
        kind = i % 4
        if kind == 0:
            httpx.post(f"{base}/api/reconstruct?format=json", files={"audio": ("a.opus", clip_bytes(i))}, timeout=60)
        elif kind == 1:
            httpx.post(f"{base}/api/match", timeout=60, files=[("audio", ("a.opus", clip_bytes(i))),
                                                               ("faces", ("f.jpg", faces[i].read_bytes())),
                                                               ("faces", ("big.png", big))])
        elif kind == 2:
            httpx.post(f"{base}/api/reconstruct", files={"audio": ("n.wav", b"RIFF" + bytes(100))}, timeout=60)
        else:
            httpx.post(f"{base}/api/reconstruct?duration=3", files={"audio": ("a.opus", clip_bytes(i))}, timeout=60)

    for i in range(40):
        request(i)
    warm = rss_mb()
    for i in range(40, 200):
        request(i)
    assert rss_mb() - warm < 150, (warm, rss_mb())


def test_audio_sent_twice_is_refused_not_silently_replaced(server):
    base, _ = server
    r = httpx.post(f"{base}/api/reconstruct", timeout=60,
                   files=[("audio", ("a.opus", clip_bytes(0))), ("audio", ("b.opus", clip_bytes(1)))])
    assert r.status_code == 422 and "one recording" in r.json()["error"]


def test_uploads_are_kept_in_memory_not_spooled_to_disk():
    """Starlette spools multipart parts over 1 MB to a temporary file; the app raises that bound
    above its upload limit, so a 5 MB upload never touches the disk."""
    import asyncio

    from starlette.datastructures import Headers
    from starlette.formparsers import MultiPartParser

    from speech2face.serve.app import MAX_UPLOAD_BYTES, create_app

    create_app(load=lambda: None)
    body = (b"--b\r\nContent-Disposition: form-data; name=\"audio\"; filename=\"a.wav\"\r\n"
            b"Content-Type: application/octet-stream\r\n\r\n" + b"\0" * (5 * 1024 * 1024) + b"\r\n--b--\r\n")

    async def stream():
        yield body

    async def parse():
        parser = MultiPartParser(Headers({"content-type": "multipart/form-data; boundary=b"}), stream())
        return (await parser.parse())["audio"]

    upload = asyncio.run(parse())
    assert MultiPartParser.spool_max_size > MAX_UPLOAD_BYTES
    assert upload.size == 5 * 1024 * 1024 and not upload.file._rolled  # still an in-memory buffer


def test_huge_upload_is_refused_while_streaming(server):
    base, proc = server
    before = rss_mb(proc.pid)

    def body():  # 100 MB of multipart, sent chunk by chunk without a Content-Length
        yield b"--b\r\nContent-Disposition: form-data; name=\"audio\"; filename=\"big.wav\"\r\n\r\n"
        chunk = b"\0" * (1 << 20)
        for _ in range(100):
            yield chunk
        yield b"\r\n--b--\r\n"

    try:
        r = httpx.post(f"{base}/api/reconstruct", content=body(), timeout=60,
                       headers={"content-type": "multipart/form-data; boundary=b"})
        assert r.status_code == 413 and "larger than 20 MB" in r.json()["error"]
    except httpx.HTTPError:
        pass  # the server may close the connection once it has answered 413
    r = httpx.post(f"{base}/api/reconstruct", files={"audio": ("big.wav", b"\0" * (25 << 20))}, timeout=60)
    assert r.status_code == 413
    assert rss_mb(proc.pid) - before < 60  # nothing of it was held in memory
    assert alive(base)


def test_wav_header_claiming_a_huge_length(server):
    base, _ = server
    import soundfile as sf

    wave, rate = sf.read(io.BytesIO(clip_bytes(3)), dtype="float32")
    data = bytearray(wav_bytes(wave[:32_000], rate))
    data[4:8] = struct.pack("<I", 0xFFFFFFF0)  # RIFF size
    data[40:44] = struct.pack("<I", 0xFFFFFFE0)  # data chunk size: ~4 GB claimed, 64 kB present
    r = post(base, bytes(data), name="liar.wav")
    assert r.status_code in (200, 422), r.text  # decoded as far as it goes, or refused clearly
    assert alive(base)


def test_32_concurrent_requests(server):
    base, _ = server
    clips = [clip_bytes(i % 8) for i in range(32)]
    with ThreadPoolExecutor(32) as pool:
        codes = list(pool.map(lambda c: post(base, c).status_code, clips))
    assert codes == [200] * 32


def _metric(base: str, name: str, **labels) -> float:
    """The value of one sample of /metrics (0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(httpx.get(f"{base}/metrics", timeout=10).text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def _pixels(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)), dtype=np.int16)


def test_concurrent_requests_are_batched_and_draw_the_same_faces(server):
    """12 requests at once run in a few batches and draw what each clip draws alone."""
    base, _ = server
    clips = [clip_bytes(i) for i in range(12)]
    alone = [_pixels(post(base, c).content) for c in clips]
    batches_before = _metric(base, "speech2face_batch_size_count")
    with ThreadPoolExecutor(12) as pool:
        together = list(pool.map(lambda c: post(base, c), clips))
    assert [r.status_code for r in together] == [200] * 12
    for a, r in zip(alone, together):
        assert np.abs(a - _pixels(r.content)).max() <= 1  # batched drawing: within a grey level
    batches = _metric(base, "speech2face_batch_size_count") - batches_before
    assert batches < 12, "concurrent requests were not batched"


@pytest.mark.slow
def test_a_request_whose_client_left_is_dropped(server):
    """While a batch of long uploads is being analysed, another client gives up waiting: its
    request leaves the queue without running."""
    base, _ = server
    import soundfile as sf

    speech = np.asarray(sf.read(io.BytesIO(clip_bytes(5)))[0], np.float32)
    long_wav = wav_bytes(np.tile(speech, 5)[: 30 * 16_000])  # 30 s of speech: 10 clips of 3 s
    before = _metric(base, "speech2face_dropped_total", reason="client disconnected")

    def long_request():
        t = time.perf_counter()
        r = httpx.post(f"{base}/api/reconstruct?duration=3&variations=12", files={"audio": ("long.wav", long_wav)},
                       timeout=120)
        return r.status_code, time.perf_counter() - t

    with ThreadPoolExecutor(16) as pool:
        busy = [pool.submit(long_request) for _ in range(16)]  # one full batch
        time.sleep(0.1)
        sent = time.perf_counter()
        with pytest.raises(httpx.TimeoutException):  # gives up after 0.2 s, while the batch still runs
            httpx.post(f"{base}/api/reconstruct", files={"audio": ("c.opus", clip_bytes(6))}, timeout=0.2)
        gave_up = time.perf_counter() - sent + 0.1
        results = [f.result() for f in busy]
    assert all(code == 200 for code, _ in results)
    assert min(seconds for _, seconds in results) > gave_up + 0.05, "the batch ended before the client gave up"
    deadline = time.time() + 10
    while time.time() < deadline and _metric(base, "speech2face_dropped_total", reason="client disconnected") <= before:
        time.sleep(0.2)
    assert _metric(base, "speech2face_dropped_total", reason="client disconnected") == before + 1


def test_metrics_move_with_the_requests_sent(server):
    base, _ = server
    ok = _metric(base, "speech2face_requests_total", route="/api/reconstruct", status="200")
    bad = _metric(base, "speech2face_requests_total", route="/api/reconstruct", status="422")
    no_speech = _metric(base, "speech2face_refusals_total", reason="no speech")
    post(base, clip_bytes(0))
    post(base, clip_bytes(1), fmt="json")
    tone = wav_bytes((0.3 * np.sin(2 * np.pi * 440 * np.arange(96_000) / 16_000)).astype(np.float32))
    assert post(base, tone, name="tone.wav").status_code == 422
    assert _metric(base, "speech2face_requests_total", route="/api/reconstruct", status="200") == ok + 2
    assert _metric(base, "speech2face_requests_total", route="/api/reconstruct", status="422") == bad + 1
    assert _metric(base, "speech2face_refusals_total", reason="no speech") == no_speech + 1
    assert _metric(base, "speech2face_request_seconds_count", route="/api/reconstruct") >= 3
    assert _metric(base, "speech2face_queue_depth") == 0


def test_match_refuses_more_photos_than_its_limit(server):
    base, _ = server
    photos = [("faces", (f"{i}.png", _blank_png())) for i in range(33)]
    r = httpx.post(f"{base}/api/match", files=[("audio", ("v.opus", clip_bytes(0)))] + photos, timeout=60)
    assert r.status_code == 422 and "at most 32 photos" in r.json()["error"]


@pytest.mark.slow
def test_a_request_past_its_time_limit_is_a_503(shared_data):
    with serving("--timeout", "0.01") as (base, _):
        r = post(base, clip_bytes(0), fmt="json")
        assert r.status_code == 503 and "time limit of 0.01 s" in r.json()["error"]
        assert _metric(base, "speech2face_refusals_total", reason="time limit") == 1
        assert alive(base)


@pytest.mark.slow
def test_bf16_server_draws_the_same_faces_within_a_grey_level(server):
    """`serve --bf16` (GE2E's LSTM in bfloat16) draws what the float32 server draws, to the eye."""
    base, _ = server
    with serving("--bf16") as (fast, _):
        for index in range(3):
            exact, approx = (np.asarray(Image.open(io.BytesIO(post(b, clip_bytes(index)).content)), dtype=float)
                             for b in (base, fast))
            assert np.abs(exact - approx).mean() < 1.0


def test_match_api(server):
    base, _ = server
    faces = sorted((PAIRS / "faces").glob("*.jpg"))[:3]
    files = [("audio", ("v.opus", clip_bytes(0)))] + [("faces", (p.name, p.read_bytes())) for p in faces]
    files.append(("faces", ("blank.png", _blank_png())))
    r = httpx.post(f"{base}/api/match", files=files, timeout=60)
    ranking = r.json()["ranking"]
    assert r.status_code == 200 and [x.get("rank") for x in ranking[:3]] == [1, 2, 3]
    assert ranking[0]["score"] >= ranking[1]["score"] >= ranking[2]["score"]
    assert ranking[3]["name"] == "blank.png" and "no face" in ranking[3]["error"]


def test_match_says_which_face_of_a_group_photo_was_scored(server, face_analyzer):
    from PIL import Image

    from speech2face.faces import load_image

    base, _ = server
    singles = (p for p in sorted((PAIRS / "faces").glob("*.jpg")) if len(face_analyzer.detect(load_image(p))) == 1)
    faces = [next(singles), next(singles)]
    group = Image.new("RGB", (224 + 160, 224), (230, 230, 230))
    group.paste(Image.open(faces[0]), (0, 0))
    group.paste(Image.open(faces[1]).resize((160, 160)), (224, 32))
    buf = io.BytesIO()
    group.save(buf, format="JPEG")
    files = [("audio", ("v.opus", clip_bytes(0))), ("faces", ("group.jpg", buf.getvalue())),
             ("faces", (faces[0].name, faces[0].read_bytes()))]
    ranking = {x["name"]: x for x in httpx.post(f"{base}/api/match", files=files, timeout=60).json()["ranking"]}
    entry = ranking["group.jpg"]
    assert entry["faces_found"] >= 2 and f"{entry['faces_found']} faces in this image; only the largest" in entry["note"]
    left, top, right, bottom = entry["face_box"]
    assert right <= 240  # the big face on the left was the one scored
    assert ranking[faces[0].name]["faces_found"] == 1 and "note" not in ranking[faces[0].name]


@pytest.mark.slow
def test_docs_work_offline_in_a_browser(server):
    base, _ = server
    chromium, playwright = need_chromium()
    outside = []

    def only_loopback(route):
        if route.request.url.startswith(base):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        page = browser.new_page()
        page.route("**/*", only_loopback)
        page.goto(f"{base}/docs")
        page.wait_for_selector(".opblock-summary-path", timeout=30_000)
        paths = page.locator(".opblock-summary-path").all_inner_texts()
        assert {"/api/reconstruct", "/api/match", "/healthz"} <= {t.strip() for t in paths}, paths
        browser.close()
    assert outside == []


def _blank_png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (120, 120), (200, 200, 200)).save(buf, format="PNG")
    return buf.getvalue()


def test_match_cli(shared_data):
    faces = sorted((PAIRS / "faces").glob("*.jpg"))[:3]
    clip = sorted((PAIRS / "audio").glob("*.opus"))[0]
    r = subprocess.run([sys.executable, "-m", "speech2face", "match", str(clip), *map(str, faces), "--json"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    import json

    assert sorted(x["rank"] for x in json.loads(r.stdout)) == [1, 2, 3]


# --- the page in a real browser ----------------------------------------------------------------------
@pytest.mark.slow
def test_page_upload_shows_a_face(server, tmp_path):
    base, _ = server
    chromium, playwright = need_chromium()
    clip = sorted((PAIRS / "audio").glob("*.opus"))[4]
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        page = browser.new_page()
        page.goto(base)
        page.check("input[name=where][value=server]")  # these check the server path; test_page_on_device the other
        assert "must never be used to identify" in page.inner_text(".notice")
        page.set_input_files("#file", str(clip))
        page.wait_for_function("document.getElementById('face').src.startsWith('data:image/png')", timeout=60_000)
        assert page.evaluate("document.getElementById('face').naturalWidth") == 224
        assert "face, age around" in page.inner_text("#attributes")
        assert " voice (" in page.inner_text("#voice") or "gender uncertain" in page.inner_text("#voice")
        assert "about" in page.inner_text("#voice") and "ethnicity" in page.inner_text("#voice")
        assert page.inner_text("#used") == "Drawn from the speech at 0.0–6.0 s of 6.0 s."
        page.wait_for_function("[...document.querySelectorAll('#more img')].filter(i => i.naturalWidth === 224).length === 3",
                               timeout=10_000)  # the page's default: 4 faces
        assert page.is_visible("#more-label")
        page.select_option("#variations", "1")
        page.set_input_files("#file", [])
        page.set_input_files("#file", str(clip))
        page.wait_for_function("document.getElementById('status').textContent === 'Done (on the server).' && "
                               "document.getElementById('face').src.startsWith('data:image/png')", timeout=60_000)
        assert page.evaluate("document.querySelectorAll('#more img').length") == 0 and not page.is_visible("#more-label")
        shown = _pixels(page.locator("#face").screenshot())[..., :3]  # what the page shows where the face is
        browser.close()
    assert abs(shown.shape[0] - 226) <= 1 and abs(shown.shape[1] - 226) <= 1  # 224 px and its border (±1 rounding)
    inner = shown[40:190, 60:166]  # the middle of the portrait: a face, not the page's grey or a blank
    assert inner.std() > 20 and np.abs(inner.mean(axis=(0, 1)) - 244).max() > 30


@pytest.mark.slow
def test_page_says_when_there_is_no_speech(server, tmp_path):
    base, _ = server
    chromium, playwright = need_chromium()
    import soundfile as sf

    t = np.arange(6 * 16_000) / 16_000
    sf.write(tmp_path / "tone.wav", 0.3 * np.sin(2 * np.pi * 440 * t), 16_000, subtype="PCM_16")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        page = browser.new_page()
        page.goto(base)
        page.check("input[name=where][value=server]")  # these check the server path; test_page_on_device the other
        page.set_input_files("#file", str(tmp_path / "tone.wav"))
        page.wait_for_function("document.getElementById('status').className === 'error'", timeout=60_000)
        assert page.inner_text("#status").startswith("no speech found")
        assert not page.evaluate("document.getElementById('face').src")
        browser.close()


@pytest.mark.slow
def test_page_clears_the_previous_face_when_the_next_upload_fails(server, tmp_path):
    """A good upload draws a face; noise uploaded next shows its error and no face or attributes
    of the earlier voice stay on screen."""
    base, _ = server
    chromium, playwright = need_chromium()
    import soundfile as sf

    sf.write(tmp_path / "noise.wav", np.random.default_rng(0).standard_normal(6 * 16_000) * 0.1, 16_000, subtype="PCM_16")
    clip = sorted((PAIRS / "audio").glob("*.opus"))[4]
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        page = browser.new_page()
        page.goto(base)
        page.check("input[name=where][value=server]")  # these check the server path; test_page_on_device the other
        page.set_input_files("#file", str(clip))
        page.wait_for_function("document.getElementById('face').src.startsWith('data:image/png')", timeout=60_000)
        assert page.is_visible("#face") and "face, age around" in page.inner_text("#attributes")
        page.set_input_files("#file", str(tmp_path / "noise.wav"))
        page.wait_for_function("document.getElementById('status').className === 'error'", timeout=60_000)
        assert page.inner_text("#status").startswith("no speech found")
        assert not page.evaluate("document.getElementById('face').getAttribute('src')")
        assert not page.is_visible("#face")
        assert page.inner_text("#attributes") == "" and page.inner_text("#used") == ""
        assert page.inner_text("#voice") == "" and page.evaluate("document.querySelectorAll('#more img').length") == 0
        browser.close()


@pytest.mark.slow
def test_page_records_from_a_fake_microphone(server, tmp_path):
    base, _ = server
    chromium, playwright = need_chromium()
    import soundfile as sf

    wave, rate = sf.read(io.BytesIO(clip_bytes(5)), dtype="float32")
    fake = tmp_path / "mic.wav"
    sf.write(fake, wave, rate, subtype="PCM_16")
    args = BROWSER_ARGS + ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                           f"--use-file-for-fake-audio-capture={fake}"]
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=args)
        page = browser.new_page()
        page.goto(base)
        page.check("input[name=where][value=server]")  # these check the server path; test_page_on_device the other
        page.click("#record")
        page.wait_for_timeout(4000)
        page.click("#stop")
        page.wait_for_function("document.getElementById('face').src.startsWith('data:image/png')", timeout=60_000)
        page.screenshot(path=str(tmp_path / "recorded.png"))
        browser.close()
