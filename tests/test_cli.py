"""The command line: one table of commands, each a module with ``add_arguments`` and ``run``
imported only when asked for; --help, a bad flag and every command's --help without torch; the
reconstruct loop over batches; --engine."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from speech2face import cli
from speech2face.cli import COMMANDS, command_parser
from speech2face.errors import InputError

from conftest import PAIRS

SRC = Path(cli.__file__).resolve().parent

# runs `speech2face ARGS…` through the package's __main__, then says on stderr whether torch was imported
WRAPPER = ("import runpy, sys\n"
           "sys.argv = ['speech2face', *sys.argv[1:]]\n"
           "code = 0\n"
           "try:\n"
           "    runpy.run_module('speech2face', run_name='__main__')\n"
           "except SystemExit as exit:\n"
           "    code = exit.code\n"
           "print('torch imported' if 'torch' in sys.modules else 'no torch', file=sys.stderr)\n"
           "sys.exit(code)\n")


def speech2face(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WRAPPER, *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd)


def test_help_lists_every_command_without_torch():
    r = speech2face("--help")
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "no torch"
    for name in COMMANDS:
        assert name.split()[0] in r.stdout


@pytest.mark.parametrize("argv", [["reconstruct", "--bad-flag"], ["reconstruct", "a.wav", "-o", "x.png", "--bad-flag"],
                                  ["reconstruct", "a.wav", "-o", "x.png", "--engine", "tf"], ["nonsense"], [],
                                  ["export"], ["export", "tflite"], ["train", "face-decoder", "--bad-flag"]])
def test_a_bad_command_line_is_one_line_without_torch(argv):
    r = speech2face(*argv)
    assert r.returncode == 2
    error, verdict = r.stderr.strip().splitlines()
    assert error.startswith("speech2face") and ": error: " in error and verdict == "no torch"
    assert r.stdout == ""


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_answers_help_without_torch(name):
    r = speech2face(*name.split(), "--help")
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "no torch"
    assert r.stdout.startswith(f"usage: speech2face {name}")


def test_every_command_module_has_add_arguments_and_run():
    import importlib

    for name, (module, what) in COMMANDS.items():
        assert what and "\n" not in what
        if module is None:  # a group that needs its kind
            assert any(other.startswith(name + " ") for other in COMMANDS)
            continue
        loaded = importlib.import_module(module)
        assert callable(loaded.add_arguments) and callable(loaded.run), name
        assert len(Path(loaded.__file__).read_text().splitlines()) < 400


def test_a_group_lists_its_kinds():
    text = " ".join(command_parser("train").format_help().split())
    for kind in ("face-decoder", "voice-attributes", "ethnicity"):
        assert f"'train {kind}'" in text
    text = " ".join(command_parser("evaluate").format_help().split())
    for kind in ("decoder", "seeds", "steering"):
        assert f"'evaluate {kind}'" in text
    r = speech2face("export", "--help")
    assert r.returncode == 0 and "onnx" in r.stdout and "ge2e" in r.stdout


def test_no_module_runs_as_a_script_or_keeps_its_own_main():
    """One way in: the table. No `if __name__ == "__main__"` and no module-level main() but the CLI's."""
    for path in SRC.rglob("*.py"):
        if path.name == "__main__.py":
            continue
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.If) and "__name__" in ast.unparse(node.test):
                pytest.fail(f"{path.relative_to(SRC)}: a __main__ block")
            if isinstance(node, ast.FunctionDef) and node.name == "main" and path.name != "cli.py":
                pytest.fail(f"{path.relative_to(SRC)}: its own main()")


def test_train_voice_is_train():
    assert COMMANDS["train voice"][0] == COMMANDS["train"][0]
    assert cli.command_of(["train", "voice", "shards"]) == "train voice"
    assert cli.command_of(["train", "shards"]) == "train"
    assert cli.command_of(["train", "face-decoder", "shards"]) == "train face-decoder"
    assert cli.command_of(["nonsense"]) is None


def test_the_face_decoder_flags_default_to_its_training_config():
    from speech2face.training.face_decoder import FaceDecoderTrainConfig

    args = command_parser("train face-decoder").parse_args(["shards"])
    cfg = FaceDecoderTrainConfig()
    for flag in ("out", "batch_size", "refiner_minutes", "calibration_rounds", "seed", "fit_on", "looks",
                 "frame_scale", "from_weights", "limit"):
        assert getattr(args, flag) == getattr(cfg, flag), flag


# --- --engine ---------------------------------------------------------------------------------------
class _Stop(InputError):
    pass


@pytest.mark.parametrize("engine", ["auto", "onnx", "torch"])
@pytest.mark.parametrize("command", ["reconstruct", "match"])
def test_engine_is_passed_to_load_model(command, engine, tmp_path, monkeypatch, capsys):
    import speech2face.pipeline

    seen = {}

    def load_model(**kwargs):
        seen.update(kwargs)
        raise _Stop("stopped here")

    monkeypatch.setattr(speech2face.pipeline, "load_model", load_model)
    (tmp_path / "a.wav").write_bytes(b"RIFF")
    (tmp_path / "f.jpg").write_bytes(b"\xff\xd8")
    argv = ([command, str(tmp_path / "a.wav"), "-o", str(tmp_path / "a.png")] if command == "reconstruct"
            else [command, str(tmp_path / "a.wav"), str(tmp_path / "f.jpg")])
    flag = [] if engine == "auto" else ["--engine", engine]
    assert cli.main(argv + flag) == 2
    assert seen["engine"] == engine
    assert capsys.readouterr().err.strip() == f"speech2face {command}: error: stopped here"


def test_serve_takes_an_engine(monkeypatch):
    import speech2face.serve.app

    seen = {}
    monkeypatch.setattr(speech2face.serve.app, "serve", lambda *a, **k: seen.update(k))
    assert cli.main(["serve", "--engine", "onnx"]) == 0
    assert seen["engine"] == "onnx"
    monkeypatch.undo()
    with pytest.raises(InputError, match="unknown engine 'tf'"):  # the real one refuses, before listening
        speech2face.serve.app.serve(engine="tf")


def _clip(shared_data) -> Path:
    return sorted((PAIRS / "audio").glob("*.opus"))[7]


@pytest.mark.slow
def test_reconstruct_on_onnx_never_imports_torch(shared_data, tmp_path):
    r = speech2face("reconstruct", str(_clip(shared_data)), "-o", str(tmp_path / "face.png"), "--engine", "onnx",
                    "--json")
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip().splitlines()[-1] == "no torch"
    assert json.loads(r.stdout)["faces"] == [str(tmp_path / "face.png")]
    assert (tmp_path / "face.png").stat().st_size > 0


@pytest.mark.slow
def test_reconstruct_on_torch(shared_data, tmp_path, capsys):
    pytest.importorskip("torch")
    from PIL import Image

    assert cli.main(["reconstruct", str(_clip(shared_data)), "-o", str(tmp_path / "face.png"),
                     "--engine", "torch", "--device", "cpu", "--json"]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["faces"] == [str(tmp_path / "face.png")] and line["voice_attributes"]
    assert Image.open(tmp_path / "face.png").size[0] > 100


# --- the reconstruct loop -----------------------------------------------------------------------------
class _FakeModel:
    """reconstruct_each as the pipeline answers it: a result per input, an InputError for 'bad' ones."""

    def __init__(self):
        self.batches = []

    def reconstruct_each(self, sources, duration, variations):
        self.batches.append([Path(s).name for s in sources])
        out = []
        for k, s in enumerate(sources):
            if "bad" in Path(s).name:
                out.append(InputError(f"{s}: no speech found"))
                continue
            faces = [np.full((16, 16, 3), 10 * (k + v), np.uint8) for v in range(variations)]
            out.append(SimpleNamespace(image=faces[0], variations=faces, used="0.0–6.0 s", notes=[],
                                       voice_attributes={"gender": "f"}, input_seconds=6.0))
        return out


def test_reconstruct_draws_in_batches_and_writes_each_face_once(tmp_path, monkeypatch, capsys):
    import speech2face.commands.reconstruct as reconstruct
    import speech2face.pipeline

    model = _FakeModel()
    monkeypatch.setattr(speech2face.pipeline, "load_model", lambda **k: model)
    monkeypatch.setattr(reconstruct, "BATCH", 2)
    clips = tmp_path / "clips"
    clips.mkdir()
    names = ["a", "b", "bad", "c", "d"]
    for n in names:
        (clips / f"{n}.wav").write_bytes(b"RIFF")
    out = tmp_path / "faces"
    code = cli.main(["reconstruct", str(clips), str(tmp_path / "missing.wav"), "-o", str(out),
                     "--variations", "2", "--json"])
    assert code == 1  # one unreadable and one missing input; the others drawn
    assert model.batches == [["a.wav", "b.wav"], ["bad.wav", "c.wav"], ["d.wav"]]
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [Path(x["input"]).name for x in lines] == ["missing.wav", "a.wav", "b.wav", "bad.wav", "c.wav", "d.wav"]
    assert lines[0]["faces"] == [] and lines[0]["error"]
    assert lines[3]["faces"] == [] and lines[3]["error"] == "no speech found"
    for line in lines[1:3] + lines[4:]:
        stem = Path(line["input"]).stem
        assert line["faces"] == [str(out / f"{stem}.png"), str(out / f"{stem}_v2.png")]
        assert line["used"] == "0.0–6.0 s" and line["voice_attributes"] == {"gender": "f"}
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted([f"{n}{v}.png" for n in "abcd" for v in ("", "_v2")] + ["contact_sheet.png"])


def test_reconstruct_plain_output_lists_the_files_written(tmp_path, monkeypatch, capsys):
    import speech2face.pipeline
    import speech2face.voice_attributes

    monkeypatch.setattr(speech2face.pipeline, "load_model", lambda **k: _FakeModel())
    monkeypatch.setattr(speech2face.voice_attributes, "describe", lambda told: f"{told['gender']} voice")
    (tmp_path / "one.wav").write_bytes(b"RIFF")
    assert cli.main(["reconstruct", str(tmp_path / "one.wav"), "-o", str(tmp_path / "face.png")]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [str(tmp_path / "face.png")]
    assert captured.err.strip() == f"{tmp_path / 'one.wav'}: the voice: f voice"
