"""Command line: a table of commands, each a small module that adds its arguments to a parser
(``add_arguments(parser)``) and does its work (``run(args) -> int``). A command's module is
imported only when that command is asked for, and imports torch (if at all) inside ``run``, so
``speech2face --help``, a bad flag and any command's ``--help`` answer without waiting for torch."""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
from pathlib import Path

from .errors import InputError, WeightsError
from .extras import PROFILES, missing

# "command" or "command kind" → (module with add_arguments and run, what it does). A command
# that is also a group ('train', 'evaluate') runs its own module when no kind follows; a group
# without a module of its own ('export') needs a kind.
COMMANDS: dict[str, tuple[str | None, str]] = {
    "reconstruct": ("speech2face.commands.reconstruct", "speech → a canonical face of the speaker"),
    "prepare": ("speech2face.commands.prepare", "turn audio-visual material into training shards"),
    "evaluate": ("speech2face.evaluation.commands.evaluate",
                 "score reconstructions with the paper's protocol; write a report"),
    "evaluate decoder": ("speech2face.evaluation.commands.decoder",
                         "face-to-face check of a face decoder on dev identities"),
    "evaluate seeds": ("speech2face.evaluation.commands.seeds", "mean ± sd over several evaluation reports"),
    "evaluate steering": ("speech2face.evaluation.commands.steering",
                          "score drawing settings (exaggeration, steering) on val drawings"),
    "normalize": ("speech2face.commands.normalize", "photo → face descriptor → canonical frontal face"),
    "match": ("speech2face.commands.match", "rank face photos by how well they fit a voice"),
    "serve": ("speech2face.serve.commands.serve", "the web page and HTTP API"),
    "export": (None, "write the ONNX graphs the runtime and the page run, or convert GE2E's weights "
                     "(needs speech2face[train])"),
    "export onnx": ("speech2face.export.commands.onnx",
                    "write the ONNX graphs the runtime and the page run, from the shipped weights"),
    "export ge2e": ("speech2face.export.commands.ge2e",
                    "convert resemblyzer's GE2E weights to the shipped safetensors file"),
    "site": ("speech2face.serve.commands.site",
             "write the web page as a static folder that draws faces on the visitor's device"),
    "train": ("speech2face.training.commands.voice",
              "train a voice encoder (speech → face descriptor; also 'train voice'); torchrun-ready"),
    "train voice": ("speech2face.training.commands.voice", "train the voice encoder (the same as 'train')"),
    "train face-decoder": ("speech2face.training.commands.face_decoder", "train the face decoder on face shards"),
    "train voice-attributes": ("speech2face.training.commands.voice_attributes",
                               "fit and calibrate what the voice tells (gender, age, ethnicity)"),
    "train ethnicity": ("speech2face.training.commands.ethnicity",
                        "train the UTKFace ethnicity classifier of the scorer"),
}


class _HelpWithDefaults(argparse.HelpFormatter):
    """Every option's help ends with its default, where it has one and does not say it already."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        has_default = not (action.default is None or action.default is False or action.default == argparse.SUPPRESS)
        if action.option_strings and has_default and "default" not in text:
            text += " (default: %(default)s)"
        return text


class _OneLineErrors(argparse.ArgumentParser):
    """A bad flag is one line on stderr (and exit 2), not the usage block argparse prints."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _kinds(group: str) -> dict[str, str]:
    """The kinds of a group ('train' → {'face-decoder': what, …}), without its own default."""
    return {name.split()[1]: what for name, (_, what) in COMMANDS.items()
            if name.startswith(group + " ") and COMMANDS[name][0] != COMMANDS.get(group, (None,))[0]}


def command_of(argv: list[str]) -> str | None:
    """The table's name for the command ``argv`` starts with ('train face-decoder', 'train'), or
    None where it names none."""
    for n in (2, 1):
        name = " ".join(argv[:n])
        if len(argv) >= n and name in COMMANDS:
            return name
    return None


def command_parser(name: str) -> argparse.ArgumentParser:
    """The parser of one command of the table, its module's arguments added (the module imported)."""
    module_path, what = COMMANDS[name]
    description = what[:1].upper() + what[1:] + "."
    kinds = _kinds(name)
    if kinds:
        description += " Also: " + "; ".join(f"'{name} {k}': {w}" for k, w in kinds.items()) + \
                       " (each with its own --help)."
    parser = _OneLineErrors(prog=f"speech2face {name}", formatter_class=_HelpWithDefaults, description=description)
    importlib.import_module(module_path).add_arguments(parser)
    return parser


def build_parser(group: str | None = None) -> argparse.ArgumentParser:
    """The parser that lists the commands (or a group's kinds) and answers --help, --version and a
    name that is not a command; it imports no command's module."""
    prog = "speech2face" + (f" {group}" if group else "")
    parser = _OneLineErrors(prog=prog, formatter_class=_HelpWithDefaults,
                            description=COMMANDS[group][1] if group else
                            "Hear a few seconds of speech, draw a canonical face of the speaker.")
    if group is None:
        parser.add_argument("--version", action="version", version=f"%(prog)s {__import__('speech2face').__version__}")
        names = {name: what for name, (_, what) in COMMANDS.items() if " " not in name}
    else:
        names = _kinds(group)
    sub = parser.add_subparsers(dest="kind" if group else "command", required=True, parser_class=_OneLineErrors)
    for name, what in names.items():
        sub.add_parser(name, help=what)
    return parser


def _files_as_files(argv: list[str], options: set[str]) -> list[str]:
    """Arguments that start with '-' but name an existing file ('-1nRm4tQL0A_024.76-029.96.opus',
    as AVSpeech names clips) are files, not flags: written './-…' for argparse. One of the
    command's own ``options`` (a file named '--json' beside it) stays the option; './--json'
    names the file. After '--' everything is a file already."""
    end = argv.index("--") if "--" in argv else len(argv)
    return [f"./{a}" if k < end and a.startswith("-") and len(a) > 2 and a.split("=")[0] not in options
            and Path(a).is_file() else a for k, a in enumerate(argv)]


def _option_strings(parser: argparse.ArgumentParser) -> set[str]:
    """Every flag of ``parser``."""
    return {flag for action in parser._actions for flag in action.option_strings}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    name = command_of(argv)
    if name is None or COMMANDS[name][0] is None:  # --help, --version, no command, a group without its kind
        build_parser(name).parse_args(argv[1:] if name else argv)
        return 2  # not reached: each of those exits
    words = name.split()
    parser = command_parser(name)
    rest = _files_as_files(argv[len(words):], _option_strings(parser))
    args = parser.parse_args(rest)
    args.command_line = "speech2face " + shlex.join(words + rest)  # as given, for the weights' reproduce line
    module = sys.modules[COMMANDS[name][0]]
    try:
        return module.run(args)
    except (InputError, WeightsError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:  # an optional profile's package, met deep inside a command
        package = (exc.name or "").split(".")[0]
        if package not in PROFILES:
            raise
        print(f"{parser.prog}: error: {missing(package, f'speech2face {name}')}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
