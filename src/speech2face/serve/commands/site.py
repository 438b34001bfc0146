"""speech2face site: the web page as a static folder that draws faces on the visitor's device."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", help="folder to write (index.html, static/, models/)")


def run(args: argparse.Namespace) -> int:
    from ..site import write_site

    print(json.dumps(write_site(Path(args.out)), indent=1))
    return 0
