"""``speech2face site OUT/``: the web page as a static folder that any static host can serve. It
draws faces on the visitor's device only (there is no server behind it): the page, its script,
onnxruntime-web and the ONNX graphs, laid out as the server serves them (/, /static, /models)."""

from __future__ import annotations

import mimetypes
import shutil
from importlib import resources
from pathlib import Path

from ..errors import InputError
from ..weights import shipped

VENDOR = "vendor"  # onnxruntime-web, put there by scripts/fetch_onnxruntime_web.sh at install time
mimetypes.add_type("text/javascript", ".mjs")  # module scripts must be served as JavaScript
mimetypes.add_type("application/wasm", ".wasm")


def static_folder() -> Path:
    return Path(str(resources.files("speech2face") / "serve" / "static"))


def page_folders() -> dict[str, Path]:
    """URL prefix → folder: the page's script and onnxruntime-web, and the ONNX graphs."""
    return {"static": static_folder(), "models": shipped("onnx")}


def check_vendor() -> None:
    if not (static_folder() / VENDOR / "ort.wasm.min.mjs").is_file():
        raise InputError("onnxruntime-web is not in the package (run scripts/fetch_onnxruntime_web.sh, which needs npm)")


def write_site(out: Path) -> dict:
    """Write the page into ``out`` (created; an existing page there is replaced); what was written."""
    check_vendor()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    html = (static_folder() / "index.html").read_text().replace("<body>", '<body data-server="none">', 1)
    (out / "index.html").write_text(html)
    sizes = {"index.html": len(html.encode())}
    for url, folder in page_folders().items():
        target = out / url
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(folder, target, ignore=shutil.ignore_patterns("*.html", "__pycache__", "*.sha256"))
        sizes[url] = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
    return {"folder": str(out), "bytes": sizes, "total_mb": round(sum(sizes.values()) / 1e6, 1)}
