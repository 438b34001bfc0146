"""The page drawing on the device, in headless Chromium: an upload and a recording (fake
microphone) are drawn while every request to /api/ is blocked, the face is the Python runtime's,
non-speech gets the same message as the server gives, and `speech2face site` serves it statically."""

from __future__ import annotations

import base64
import functools
import http.server
import io
import socketserver
import threading
import time

import numpy as np
import pytest
from PIL import Image

from conftest import BROWSER_ARGS, PAIRS, need_chromium
from test_serve import serving

FIRST_FACE_SECONDS = 5.0  # from page load to the first face, on this machine (the bar)


@pytest.fixture(scope="module")
def server(shared_data):
    with serving() as running:
        yield running


@pytest.fixture(scope="module")
def clip_16k(tmp_path_factory, shared_data):
    """A real clip as 16 kHz float WAV: what the page decodes is then exactly what Python reads."""
    import soundfile as sf

    from speech2face import audio

    wave, rate, _, _ = audio.decode_audio(sorted((PAIRS / "audio").glob("*.opus"))[3])
    path = tmp_path_factory.mktemp("clip") / "clip.wav"
    sf.write(path, audio.resample(wave, rate), 16_000, subtype="FLOAT")
    return path


def _face(page) -> np.ndarray:
    src = page.get_attribute("#face", "src")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB"))


def _blocking_api(page, base: str) -> list[str]:
    """Every request to /api/ is aborted and listed: drawing on the device must send none."""
    sent = []

    def block(route):
        sent.append(route.request.url)
        route.abort()

    page.route(f"{base}/api/**", block)
    return sent


@pytest.mark.slow
def test_upload_and_recording_are_drawn_on_the_device_with_the_api_blocked(server, clip_16k, tmp_path):
    import soundfile as sf

    import speech2face

    base, _ = server
    chromium, playwright = need_chromium()
    wave, rate = sf.read(clip_16k, dtype="float32")
    mic = tmp_path / "mic.wav"
    sf.write(mic, wave, rate, subtype="PCM_16")
    args = BROWSER_ARGS + ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                           f"--use-file-for-fake-audio-capture={mic}"]
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=args)
        page = browser.new_page()
        sent = _blocking_api(page, base)
        start = time.monotonic()
        page.goto(base)
        assert page.is_checked("input[name=where][value=device]")  # the default
        assert "no audio is sent anywhere" in page.inner_text("#privacy")
        page.select_option("#variations", "1")
        page.set_input_files("#file", str(clip_16k))
        page.wait_for_selector("#face[data-drawn-on=device]", timeout=60_000)
        first_face = time.monotonic() - start
        uploaded = _face(page)
        assert page.inner_text("#status") == "Done (on this device)."
        assert "ethnicity" in page.inner_text("#voice") and page.inner_text("#used").startswith("Drawn from the speech at")

        page.click("#record")
        page.wait_for_timeout(4000)
        page.click("#stop")
        page.wait_for_selector("#face[data-drawn-on=device]", timeout=60_000)
        recorded = _face(page)
        browser.close()
    assert sent == []
    assert first_face <= FIRST_FACE_SECONDS, f"first face after {first_face:.1f} s"
    python = speech2face.load_model().reconstruct(clip_16k).image
    assert np.abs(uploaded.astype(int) - python.astype(int)).mean() <= 2.0
    assert recorded.shape == (224, 224, 3) and recorded[40:190, 60:166].std() > 20  # a face, not a blank


@pytest.mark.slow
def test_non_speech_says_no_speech_on_the_device(server, tmp_path):
    import soundfile as sf

    base, _ = server
    chromium, playwright = need_chromium()
    t = np.arange(6 * 16_000) / 16_000
    sf.write(tmp_path / "tone.wav", 0.3 * np.sin(2 * np.pi * 440 * t), 16_000, subtype="PCM_16")
    (tmp_path / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot audio at all")
    sf.write(tmp_path / "short.wav", np.random.default_rng(0).standard_normal(8000) * 0.1, 16_000, subtype="PCM_16")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        page = browser.new_page()
        sent = _blocking_api(page, base)
        page.goto(base)
        seen = {}
        for name in ("tone.wav", "broken.wav", "short.wav"):
            page.set_input_files("#file", [])
            page.set_input_files("#file", str(tmp_path / name))
            page.wait_for_function("document.getElementById('status').className === 'error'", timeout=60_000)
            seen[name] = page.inner_text("#status")
            assert not page.evaluate("document.getElementById('face').getAttribute('src')")
        browser.close()
    assert sent == []
    assert seen["tone.wav"].startswith("no speech found")
    assert "could not be read as audio" in seen["broken.wav"]
    assert seen["short.wav"].startswith("the audio is too short")


@pytest.mark.slow
def test_the_static_site_draws_without_a_server(clip_16k, tmp_path):
    from speech2face.serve.site import write_site

    chromium, playwright = need_chromium()
    written = write_site(tmp_path / "site")
    assert written["total_mb"] <= 60  # page, onnxruntime-web and the graphs: all a visitor downloads

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = socketserver.ThreadingTCPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=tmp_path / "site"))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
            page = browser.new_page()
            page.goto(base + "/")
            assert page.is_disabled("input[name=where][value=server]")
            page.set_input_files("#file", str(clip_16k))
            page.wait_for_selector("#face[data-drawn-on=device]", timeout=60_000)
            assert page.evaluate("document.querySelectorAll('#more img').length") == 3  # the default: 4 faces
            browser.close()
    finally:
        httpd.shutdown()
