"""Audio front end: decoding of every format, resampling, fixed length, the paper encoder's spectrogram, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speech2face import audio
from speech2face.errors import AudioError
from speech2face.models.voice_encoder import spectrogram

from media import PYAV_AUDIO, SOUNDFILE_AUDIO, write_audio

from conftest import embed, speech_clip


def tone(seconds: float, rate: int, freq: float = 440.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return wave if channels == 1 else np.stack([wave] * channels, axis=1)


def test_derived_sizes():
    assert (audio.WIN_LENGTH, audio.HOP_LENGTH, audio.N_FREQ) == (400, 160, 257)
    assert audio.clip_samples() == 96_000
    assert audio.n_frames(6.0) == 598
    assert audio.n_frames(3.0) == 298


def test_spectrogram_shape_and_dtype():
    spec = spectrogram(np.random.default_rng(0).standard_normal(96_000).astype(np.float32))
    assert spec.shape == (2, 598, 257) and spec.dtype == torch.float32
    batch = spectrogram(torch.zeros(3, 48_000))
    assert batch.shape == (3, 2, 298, 257)


def test_spectrogram_matches_scipy_stft(speech_wave):
    """Independent computation: scipy's STFT (periodic Hann, 400-sample frames, 512-point FFT)."""
    from scipy.signal import get_window, stft

    wave = audio.fix_length(speech_wave, audio.clip_samples())
    window = get_window("hann", 400)  # periodic by default (fftbins=True)
    _, _, z = stft(wave.astype(np.float64), window=window, nperseg=400, noverlap=240, nfft=512,
                   boundary=None, padded=False, return_onesided=True, scaling="spectrum")
    z = z.T * window.sum()  # undo scipy's 1/sum(window) scaling → (598, 257)
    expected = np.stack([np.sign(z.real) * np.abs(z.real) ** 0.3, np.sign(z.imag) * np.abs(z.imag) ** 0.3])
    got = spectrogram(wave).numpy()
    assert got.shape == expected.shape == (2, 598, 257)
    # undoing the compression compares the STFT itself (float32 vs float64 rounding only) ...
    raw = np.sign(got) * np.abs(got) ** (1 / 0.3)
    np.testing.assert_allclose(raw[0], z.real, atol=1e-5 * np.abs(z).max())
    np.testing.assert_allclose(raw[1], z.imag, atol=1e-5 * np.abs(z).max())
    # ... and the compressed values agree wherever rounding is not amplified by |x|^0.3 near 0
    away_from_zero = np.abs(np.stack([z.real, z.imag])) > 1e-3
    np.testing.assert_allclose(got[away_from_zero], expected[away_from_zero], rtol=1e-3, atol=1e-4)


def test_power_law_on_a_known_value():
    """A unit impulse at the window centre: FFT is window[200]·e^{-iω200} → known compressed parts."""
    wave = np.zeros(400, np.float32)
    wave[200] = 1.0
    spec = spectrogram(wave).numpy()  # (2, 1, 257)
    k = np.arange(257)
    phase = -2 * np.pi * k * 200 / 512
    real, imag = np.cos(phase), np.sin(phase)  # window[200] = 1 for a periodic Hann of 400
    np.testing.assert_allclose(spec[0, 0], np.sign(real) * np.abs(real) ** 0.3, atol=2e-3)
    np.testing.assert_allclose(spec[1, 0], np.sign(imag) * np.abs(imag) ** 0.3, atol=2e-3)


def test_fix_length_loops_short_and_crops_long():
    short = np.arange(5, dtype=np.float32)
    np.testing.assert_array_equal(audio.fix_length(short, 12), [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1])
    long = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(audio.fix_length(long, 4, "start"), [0, 1, 2, 3])
    np.testing.assert_array_equal(audio.fix_length(long, 4, "center"), [3, 4, 5, 6])
    np.testing.assert_array_equal(audio.fix_length(long, 4, 100), [6, 7, 8, 9])  # clipped to the end
    assert audio.fix_length(long, 10).tolist() == long.tolist()


def test_a_short_recording_is_looped_to_six_and_three_seconds(tmp_path, speech_wave):
    path = write_audio(tmp_path / "short.wav", speech_wave[:40_000], 16_000)  # 2.5 s of speech
    assert speech_clip(path).shape == (96_000,)
    assert speech_clip(path, seconds=3.0).shape == (48_000,)


@pytest.mark.parametrize("rate", [8_000, 22_050, 44_100, 48_000])
def test_resampling_keeps_pitch_and_length(tmp_path, rate):
    path = write_audio(tmp_path / f"tone{rate}.wav", tone(2.0, rate, freq=440.0), rate)
    wave, got_rate, _, _ = audio.decode_audio(path)
    assert got_rate == rate
    out = audio.resample(wave, rate)
    assert abs(out.size - 32_000) <= 2
    spectrum = np.abs(np.fft.rfft(out * np.hanning(out.size)))
    peak_hz = np.argmax(spectrum) * audio.SAMPLE_RATE / out.size
    assert abs(peak_hz - 440.0) < 2.0
    assert 0.25 < np.abs(out[1000:-1000]).max() < 0.35  # amplitude preserved, no aliasing blow-up


def test_stereo_is_mixed_to_mono(tmp_path):
    left = tone(1.5, 44_100, 300.0)
    stereo = np.stack([0.9 * left, -left], axis=1)  # opposite phase: the mean cancels, so the louder channel is kept
    wave, _, _, _ = audio.decode_audio(write_audio(tmp_path / "st.wav", stereo, 44_100))
    assert wave.ndim == 1
    np.testing.assert_allclose(wave, -left, atol=1e-3)
    half = np.stack([left, 0.5 * left], axis=1)  # in phase: the mean
    wave, _, _, _ = audio.decode_audio(write_audio(tmp_path / "st1.wav", half, 44_100))
    np.testing.assert_allclose(wave, 0.75 * left, atol=1e-3)
    both = np.stack([left, left], axis=1)
    wave, _, _, _ = audio.decode_audio(write_audio(tmp_path / "st2.flac", both, 44_100))
    np.testing.assert_allclose(wave, left, atol=1e-3)


@pytest.mark.parametrize("suffix, channels", [(".wav", 8), (".wav", 9), (".wav", 16), (".flac", 8),
                                               (".m4a", 8), (".opus", 8), (".m4a", 6)])
def test_eight_or_more_channels_are_mixed_down_not_a_crash(tmp_path, suffix, channels):
    """PyAV's planar frame access reads past FFmpeg's 8 plane pointers (SIGSEGV) from 8 channels
    on: a file, its bytes (the server's path, PyAV first) and a 7.1 AAC/Opus are mixed down."""
    rate = 48_000
    path = write_audio(tmp_path / f"many{suffix}", tone(1.5, rate, 300.0, channels), rate)
    for source in (path, path.read_bytes()):
        wave, got, _, _ = audio.decode_audio(source)
        assert got == rate and wave.ndim == 1 and abs(wave.size / rate - 1.5) < 0.1
        assert 0.2 < np.abs(wave).max() < 0.4  # the same tone in every channel: the mean is the tone


@pytest.mark.parametrize("suffix", sorted(set(PYAV_AUDIO) | set(SOUNDFILE_AUDIO)))
def test_every_format_decodes_real_speech(tmp_path, speech_wave, suffix):
    rate = 48_000 if suffix in (".webm", ".opus") else 44_100
    source = audio.resample(speech_wave, audio.SAMPLE_RATE, rate)
    path = write_audio(tmp_path / f"speech{suffix}", source, rate)
    clip = speech_clip(path)
    assert clip.shape == (96_000,) and clip.dtype == np.float32
    # lossy codecs add delay and noise; the speaker embedding must still match the original
    ref = embed(audio.fix_length(speech_wave, 96_000))
    assert float(ref @ embed(clip)) > 0.9


def test_bytes_and_file_objects_decode(tmp_path, speech_wave):
    path = write_audio(tmp_path / "a.flac", speech_wave, 16_000)
    from_bytes, _, _, _ = audio.decode_audio(path.read_bytes())
    with open(path, "rb") as f:
        from_file, _, _, _ = audio.decode_audio(f)
    np.testing.assert_array_equal(from_bytes, from_file)


# --- bad input: a clear, specific error each -----------------------------------------------------
def test_empty_file(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioError, match="empty"):
        speech_clip(tmp_path / "empty.wav")


def test_text_file_named_wav(tmp_path):
    (tmp_path / "notes.wav").write_text("these are meeting notes, not audio\n" * 20)
    with pytest.raises(AudioError, match="not a readable audio file"):
        speech_clip(tmp_path / "notes.wav")


def test_truncated_flac(tmp_path, speech_wave):
    path = write_audio(tmp_path / "full.flac", speech_wave, 16_000)
    data = path.read_bytes()
    (tmp_path / "cut.flac").write_bytes(data[:60])  # header cut before any audio frame
    with pytest.raises(AudioError, match="not a readable audio file|no audio samples|too short"):
        speech_clip(tmp_path / "cut.flac")
    (tmp_path / "half.flac").write_bytes(data[: len(data) // 10])  # the first ~0.6 s survive
    with pytest.raises(AudioError, match="too short|not a readable audio file"):
        speech_clip(tmp_path / "half.flac")


def test_too_short(tmp_path):
    path = write_audio(tmp_path / "blip.wav", tone(0.2, 16_000), 16_000)
    with pytest.raises(AudioError, match=r"too short: 0\.20 s"):
        speech_clip(path)


def test_silence(tmp_path):
    path = write_audio(tmp_path / "quiet.wav", np.zeros(16_000 * 4, np.float32), 16_000)
    with pytest.raises(AudioError, match="silent"):
        speech_clip(path)


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="no such file"):
        speech_clip(tmp_path / "nope.wav")


def test_long_input_is_read_up_to_the_limit(tmp_path):
    path = write_audio(tmp_path / "long.wav", tone(30.0, 16_000), 16_000)
    wave, _, _, _ = audio.decode_audio(path, max_seconds=5.0)
    assert wave.size == 5 * 16_000


# --- wave arrays as Python callers hold them ------------------------------------------------------
def test_integer_pcm_is_scaled_by_its_type(speech_wave):
    full = {"int16": 32768, "int32": 2**31}
    for dtype, scale in full.items():
        pcm = np.round(speech_wave * (scale - 1)).astype(dtype)
        wave = audio.wave_from_array(pcm, 16_000)
        assert wave.dtype == np.float32 and np.abs(wave - speech_wave).max() < 2 / scale * 2
    pcm8 = np.round(speech_wave * 127 + 128).clip(0, 255).astype(np.uint8)  # 8-bit WAV: unsigned, centred on 128
    assert np.abs(audio.wave_from_array(pcm8, 16_000) - speech_wave).max() < 2 / 128
    assert np.array_equal(audio.wave_from_array(speech_wave.astype(np.float64), 16_000), speech_wave)


def test_channel_axis_is_recognised_either_way(speech_wave):
    stereo = np.stack([speech_wave, speech_wave * 0.5])  # (2, N)
    expected = speech_wave * 0.75
    assert np.allclose(audio.wave_from_array(stereo, 16_000), expected)
    assert np.allclose(audio.wave_from_array(stereo.T.copy(), 16_000), expected)  # (N, 2)


@pytest.mark.parametrize("array, message", [
    (np.zeros((3, 4, 16_000), np.float32), "1-D .* or 2-D"),
    (np.zeros((16, 16_000), np.float32), "at most 8 channels"),
    (np.full(16_000, np.nan, np.float32), "NaN or infinite"),
    (np.array([0.0, np.inf] * 8_000), "NaN or infinite"),
    (np.full(16_000, 12_000.0, np.float32), r"must lie in \[-1, 1\]"),
    (np.zeros(16_000, bool), "integer PCM or floating-point"),
    (np.zeros(16_000, np.complex64), "integer PCM or floating-point"),
])
def test_unusable_arrays_are_named(array, message):
    with pytest.raises(AudioError, match=message):
        audio.wave_from_array(array, 16_000)


@pytest.mark.parametrize("rate", [0, -16_000, 16_000.5, None, True])
def test_sample_rate_must_be_a_positive_integer(rate, speech_wave):
    with pytest.raises(AudioError, match="sample_rate"):
        audio.wave_from_array(speech_wave, rate)


# --- messages for people ----------------------------------------------------------------------------
def test_unreadable_bytes_say_why_without_internals():
    with pytest.raises(AudioError) as caught:
        audio.decode_audio(b"\x00\x01garbage" * 400)
    message = str(caught.value)
    assert "not a readable audio file" in message
    assert "<_io" not in message and "Errno" not in message and "0x" not in message and "<none>" not in message


def test_truncated_file_message_names_the_path_as_given(tmp_path, speech_wave, monkeypatch):
    path = write_audio(tmp_path / "cut.m4a", speech_wave, 16_000)
    path.write_bytes(path.read_bytes()[:300])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AudioError) as caught:
        speech_clip("cut.m4a")
    message = str(caught.value)
    assert message.startswith("cut.m4a: ") and "Errno" not in message and "<none>" not in message


def test_video_without_an_audio_track(tmp_path, speech_wave):
    from media import write_video

    image = np.full((64, 64, 3), 128, np.uint8)
    path = write_video(tmp_path / "silent_film.mp4", image, speech_wave[:32_000], 16_000, with_audio=False)
    with pytest.raises(AudioError, match="silent_film.mp4: the file has no audio track"):
        audio.decode_audio(path)
