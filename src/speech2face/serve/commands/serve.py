"""speech2face serve: the web page and HTTP API (``speech2face.serve.app``)."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ...commands.outputs import add_engine
    from ...limits import SERVE_TIMEOUT_SECONDS

    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=8000, help="TCP port, 1–65535")
    p.add_argument("--timeout", type=float, default=SERVE_TIMEOUT_SECONDS,
                   help="seconds a request may wait and run before it is answered 503 (server busy)")
    p.add_argument("--upload-timeout", type=float, default=20.0,
                   help="seconds from a request's start by which its upload must have arrived (else 408)")
    p.add_argument("--bf16", action="store_true",
                   help="run GE2E's LSTM in bfloat16: up to 1.5x the requests/s on CPUs with AMX or AVX512-BF16, slower on "
                        "others; voice embeddings within cosine 0.998 of the float32 ones (README: Benchmarks)")
    add_engine(p)


def run(args: argparse.Namespace) -> int:
    from ..app import serve

    serve(args.host, args.port, args.timeout, bfloat16=args.bf16, upload_timeout=args.upload_timeout,
          engine=args.engine)
    return 0
