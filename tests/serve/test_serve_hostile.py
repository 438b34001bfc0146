"""Requests meant to hold or break the server, against a real one on loopback: uploads trickled
in or sent in a burst, framing h11 cannot parse, forms cut short, text where a file belongs,
photos that are too many pixels in all or long thin strips. Each is answered {"error"} (or
ranked per photo), and /healthz answers after every one."""

from __future__ import annotations

import io
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from conftest import PAIRS
from test_serve import alive, clip_bytes, serving

httpx = pytest.importorskip("httpx")

UPLOAD_TIMEOUT = 3.0  # s, the server's --upload-timeout here


@pytest.fixture(scope="module")
def server(shared_data):
    with serving("--upload-timeout", str(UPLOAD_TIMEOUT)) as running:
        yield running


def _address(base: str) -> tuple[str, int]:
    host, port = base.removeprefix("http://").split(":")
    return host, int(port)


def _answer(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes, or ``timeout`` passes."""
    sock.settimeout(timeout)
    out = b""
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return out


def _json_body(response: bytes) -> dict:
    return json.loads(response.split(b"\r\n\r\n", 1)[1])


def _form_head(length: int, boundary: str = "XX") -> bytes:
    part = (f'--{boundary}\r\nContent-Disposition: form-data; name="audio"; filename="a.wav"\r\n'
            "Content-Type: audio/wav\r\n\r\n").encode()
    return (f"POST /api/reconstruct HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {length}\r\n\r\n").encode() + part


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def test_an_upload_trickled_in_is_refused_at_the_upload_time_limit(server):
    base, _ = server
    start = time.monotonic()
    with socket.create_connection(_address(base)) as sock:
        sock.sendall(_form_head(100_000))
        sock.settimeout(0.3)
        answer = b""
        while time.monotonic() - start < UPLOAD_TIMEOUT + 5 and not answer:
            try:
                sock.sendall(b"x" * 100)  # 100 bytes every 0.3 s: 100 KB would take 5 minutes
                answer = sock.recv(65536)
            except socket.timeout:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
        answer += _answer(sock, 2)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert "did not arrive within 3 s" in _json_body(answer)["error"]
    assert time.monotonic() - start < UPLOAD_TIMEOUT + 3
    assert alive(base)


def test_a_burst_of_large_stalled_uploads_is_bounded_in_memory_and_time(server):
    """40 connections each announcing 19 MB, sending 2 MB and stalling: those beyond the bytes the
    server holds at once get 503 straight away, the rest 408 at the upload limit; RSS stays bounded
    during the burst and falls back once it is answered."""
    base, proc = server
    before = _rss_mb(proc.pid)
    sockets = [socket.create_connection(_address(base)) for _ in range(40)]
    try:
        for sock in sockets:
            sock.sendall(_form_head(19 * 1024 * 1024))
        for sock in sockets:
            try:
                sock.sendall(b"\0" * (2 * 1024 * 1024))
            except (BrokenPipeError, ConnectionResetError):  # refused and closed already
                pass
        peak = _rss_mb(proc.pid)
        with ThreadPoolExecutor(len(sockets)) as pool:
            answers = list(pool.map(lambda s: _answer(s, UPLOAD_TIMEOUT + 5), sockets))
    finally:
        for sock in sockets:
            sock.close()
    statuses = [a[9:12] for a in answers]
    assert set(statuses) <= {b"503", b"408"}, statuses
    assert statuses.count(b"503") >= 30  # 160 MB in flight: 8 of 19 MB
    assert all("error" in _json_body(a) for a in answers)
    assert peak - before < 400, (before, peak)
    assert alive(base)
    time.sleep(1.0)
    after = _rss_mb(proc.pid)  # what the burst leaves held once it is answered
    print(f"RSS before {before:.0f} MB, peak {peak:.0f} MB, after {after:.0f} MB")
    assert after - before < 150, (before, peak, after)


@pytest.mark.parametrize("headers", [b"Content-Length: -5\r\n", b"Content-Length: 5\r\nContent-Length: 7\r\n"])
def test_framing_h11_cannot_parse_gets_the_json_error_shape(server, headers):
    base, _ = server
    with socket.create_connection(_address(base)) as sock:
        sock.sendall(b"POST /api/reconstruct HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\nhello")
        answer = _answer(sock, 5)
    assert answer.startswith(b"HTTP/1.1 400")
    assert b"application/json" in answer.split(b"\r\n\r\n")[0]
    assert "malformed HTTP request" in _json_body(answer)["error"]
    assert alive(base)


def test_a_form_without_its_closing_boundary_says_it_is_cut_short(server):
    base, _ = server
    body = _form_head(0)[_form_head(0).index(b"--XX"):] + clip_bytes()[:2000]  # no closing boundary
    head = _form_head(len(body))
    with socket.create_connection(_address(base)) as sock:
        sock.sendall(head[:head.index(b"--XX")] + body)
        answer = _answer(sock, 10)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:300]
    assert "cut short: its closing boundary is missing" in _json_body(answer)["error"]
    assert alive(base)


def test_a_text_audio_field_names_no_python_class(server):
    base, _ = server
    r = httpx.post(f"{base}/api/reconstruct", data={"audio": "hello"}, timeout=30)
    assert r.status_code == 422
    assert r.json()["error"] == ("form field 'audio': expected a file, got a text value "
                                 "(send it as a file part, with a filename)")


def test_docs_assets_are_counted_under_their_mount(server):
    base, _ = server
    assert httpx.get(f"{base}/static-offline-docs/swagger-ui.css", timeout=30).status_code == 200
    lines = httpx.get(f"{base}/metrics", timeout=30).text.splitlines()
    assert any(line.startswith('speech2face_requests_total{route="/static-offline-docs",status="200"}') for line in lines)
    assert not any('route="unmatched",status="200"' in line for line in lines)


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def test_match_bounds_the_pixels_of_a_request(server):
    base, _ = server
    flat = _png(Image.new("L", (8000, 5000), 200))  # 40 MP, a few hundred KB
    start = time.monotonic()
    r = httpx.post(f"{base}/api/match", files=[("audio", ("v.opus", clip_bytes()))]
                   + [("faces", (f"f{i}.png", flat)) for i in range(32)], timeout=60)
    assert r.status_code == 413 and "megapixels in all per request" in r.json()["error"]
    assert time.monotonic() - start < 10
    assert alive(base)


def test_long_thin_photos_are_no_face_and_the_good_photos_are_still_ranked(server):
    base, _ = server
    strips = [("faces", (f"strip{w}x{h}.png", _png(Image.new("RGB", (w, h), (120, 90, 80)))))
              for w, h in ((3000, 40), (40, 3000))]
    good = sorted((PAIRS / "faces").glob("*.jpg"))[0]
    r = httpx.post(f"{base}/api/match", files=[("audio", ("v.opus", clip_bytes())),
                                               ("faces", (good.name, good.read_bytes()))] + strips, timeout=60)
    assert r.status_code == 200, r.text
    ranking = r.json()["ranking"]
    assert ranking[0]["name"] == good.name and ranking[0]["score"] is not None
    assert [e["error"] for e in ranking[1:]] == ["no face found in the image"] * 2
    assert alive(base)


def test_ranking_stops_once_its_deadline_has_passed(shared_data):
    """The work itself stops, not only the wait for it: before the next photo after the deadline."""
    import speech2face
    from speech2face.matching import rank_faces

    model = speech2face.load_model(device="cpu")
    photo = sorted((PAIRS / "faces").glob("*.jpg"))[0].read_bytes()
    with pytest.raises(TimeoutError):
        rank_faces(model, clip_bytes(), [("a", photo)] * 3, deadline=time.monotonic() - 1)
    assert len(rank_faces(model, clip_bytes(), [("a", photo)], deadline=time.monotonic() + 60)) == 1
    assert np.isfinite(rank_faces(model, clip_bytes(), [("a", photo)])[0]["score"])
