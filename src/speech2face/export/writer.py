"""``speech2face export onnx``: the shipped safetensors weights → the ONNX graphs the runtime and
the browser run, each with its sha256, and ``manifest.json`` (what the graphs need beside them:
the constants of the clip rule, the voice's centre and spread, the first variations' draws).

Re-run it whenever a shipped weights file changes: the manifest records each source file's
sha256, and a test fails while the graphs are older than the weights they were made from.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import torch

from .. import clips, pipeline, speaker, vad
from ..limits import MAX_VARIATIONS
from ..weights import sha256_of, shipped
from . import graphs

ONNX_DIR = "onnx"  # under assets/
OPSET = 17
MANIFEST = "manifest.json"
GRAPH_FILES = {"mel": "mel.onnx", "ge2e": "ge2e.onnx", "voice": "voice.onnx", "attributes": "attributes.onnx",
               "shape": "decoder_shape.onnx", "draw": "decoder_draw.onnx", "vad": vad.VAD_MODEL}
SOURCES = (speaker.GE2E_WEIGHTS, pipeline.VOICE_WEIGHTS, pipeline.DECODER_WEIGHTS,
           "voice_attributes.safetensors", "ethnicity_utkface.safetensors")


def default_dir() -> Path:
    return shipped(ONNX_DIR)


def silero_vad_model() -> Path:
    """The batched Silero VAD graph inside the installed silero-vad wheel (MIT), found without importing it."""
    import importlib.util

    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("exporting needs the 'silero-vad' package (it ships the VAD graph): pip install 'speech2face[train]'")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / vad.VAD_MODEL


def _export(module: torch.nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str],
            dynamic: dict[str, dict[int, str]], fold: bool = True) -> str:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on shapes it fixes (they are fixed)
        torch.onnx.export(module.eval(), args, str(path), dynamo=False, opset_version=OPSET, input_names=inputs,
                          output_names=outputs, dynamic_axes=dynamic, do_constant_folding=fold)
    digest = sha256_of(path)
    Path(f"{path}.sha256").write_text(f"{digest}  {path.name}\n")
    return digest


def export_onnx(out: Path | None = None) -> dict:
    """Write every graph and the manifest into ``out`` (default: the package's assets/onnx); the manifest."""
    from ..models.speaker_encoder import speaker_encoder
    from .. import engines  # noqa: F401
    from ..engines.pytorch import load_voice
    from ..pipeline import load_decoder

    out = Path(out) if out else default_dir()
    out.mkdir(parents=True, exist_ok=True)
    ge2e = speaker_encoder("cpu")
    voice = load_voice(device="cpu")
    decoder = load_decoder(device="cpu").decoder
    attributes = pipeline.VoiceAttributes.load()
    digests = {}

    wave = torch.from_numpy(speaker.partial_wave(np.random.default_rng(0).standard_normal(96_000) * 0.1)[0])
    digests["mel"] = _export(graphs.MelGraph(ge2e), (wave,), out / GRAPH_FILES["mel"], ["wave"], ["mel"],
                             {"wave": {0: "samples"}, "mel": {0: "frames"}})
    digests["ge2e"] = _export(graphs.Ge2eGraph(ge2e), (torch.randn(3, speaker.PARTIAL_FRAMES, speaker.N_MELS).abs(),),
                              out / GRAPH_FILES["ge2e"], ["mels"], ["partials"],
                              {"mels": {0: "partials"}, "partials": {0: "partials"}})
    emb = torch.nn.functional.normalize(torch.rand(2, speaker.EMBEDDING_SIZE), dim=1)
    digests["voice"] = _export(graphs.VoiceGraph(voice.encoder, torch.from_numpy(voice.center), voice.exaggeration),
                               (emb,), out / GRAPH_FILES["voice"], ["embeddings"], ["descriptors"],
                               {"embeddings": {0: "n"}, "descriptors": {0: "n"}})
    desc = torch.from_numpy(voice.descriptors(emb.numpy(), None))
    names = ["steered", "male", "age", "posterior", "drawn"]
    digests["attributes"] = _export(graphs.AttributesGraph(attributes), (desc, emb), out / GRAPH_FILES["attributes"],
                                    ["descriptors", "embeddings"], names,
                                    {k: {0: "n"} for k in ["descriptors", "embeddings", *names]})
    decoder.texture_head = graphs.Int8Linear(decoder.texture_head)
    shape = graphs.ShapeGraph(decoder)
    digests["shape"] = _export(shape, (desc,), out / GRAPH_FILES["shape"], ["descriptors"], list(shape.NAMES),
                               {k: {0: "m"} for k in ["descriptors", *shape.NAMES]}, fold=False)
    with torch.no_grad():
        state = dict(zip(shape.NAMES, shape(desc)))
    coef = torch.linalg.solve(state["system"], state["rhs"])
    draw = graphs.DrawGraph(decoder)
    digests["draw"] = _export(draw, tuple(state[k] for k in draw.NAMES[:-1]) + (coef,), out / GRAPH_FILES["draw"],
                              list(draw.NAMES), ["faces"], {k: {0: "m"} for k in [*draw.NAMES, "faces"]})
    shutil.copyfile(silero_vad_model(), out / GRAPH_FILES["vad"])
    digests["vad"] = sha256_of(out / GRAPH_FILES["vad"])
    Path(f"{out / GRAPH_FILES['vad']}.sha256").write_text(f"{digests['vad']}  {GRAPH_FILES['vad']}\n")

    factor = attributes.t["residual.factor"]  # (128, K)
    manifest = {
        "graphs": {k: {"file": GRAPH_FILES[k], "sha256": digests[k]} for k in GRAPH_FILES},
        "sources": {name: sha256_of(shipped(name)) for name in SOURCES},
        "reproduce": "speech2face export onnx",
        "center": [round(float(v), 8) for v in voice.center],
        "portrait": bool(decoder.config.portrait),
        "size": int(decoder.config.size),
        "classes": list(attributes.classes),
        "residual_factor": np.round(factor, 8).tolist(),
        # variations' draws: numpy's default_rng(0).standard_normal((n − 1, K)) is a prefix of these rows
        "variation_draws": np.round(np.random.default_rng(0).standard_normal((MAX_VARIATIONS - 1, factor.shape[1])), 8).tolist(),
        "constants": {
            "sample_rate": speaker.SAMPLE_RATE, "clip_seconds": pipeline.audio.CLIP_SECONDS,
            "min_seconds": pipeline.audio.MIN_SECONDS, "silence_dbfs": pipeline.audio.SILENCE_DBFS,
            "quiet_dbfs": pipeline.audio.QUIET_DBFS, "quiet_target_dbfs": pipeline.audio.QUIET_TARGET_DBFS,
            "mel_hop": speaker.MEL_HOP, "partial_frames": speaker.PARTIAL_FRAMES,
            "partials_per_second": speaker.PARTIALS_PER_SECOND, "min_coverage": speaker.MIN_COVERAGE,
            "target_dbfs": speaker.TARGET_DBFS, "vad_threshold": vad.THRESHOLD, "vad_weak_threshold": vad.WEAK_THRESHOLD,
            "vad_min_speech_ms": vad.MIN_SPEECH_MS, "vad_min_silence_ms": vad.MIN_SILENCE_MS, "vad_pad_ms": vad.PAD_MS,
            "min_speech_seconds": clips.MIN_SPEECH_SECONDS, "min_window_speech_share": clips.MIN_WINDOW_SPEECH_SHARE,
            "same_voice_cosine": pipeline.SAME_VOICE_COSINE, "two_voices_cosine": pipeline.TWO_VOICES_COSINE,
            "max_input_seconds": pipeline.MAX_INPUT_SECONDS, "max_variations": MAX_VARIATIONS,
        },
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest
