#!/usr/bin/env bash
# onnxruntime-web for the page's on-device drawing, from the npm registry (npm checks the package's
# integrity): its WebAssembly build and loader, copied into the package's static folder, which the
# server and `speech2face site` serve themselves (nothing is fetched from another host at run time).
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=${ORT_WEB_VERSION:-1.31.1}
DEST=src/speech2face/serve/static/vendor
FILES=(ort.wasm.min.mjs ort-wasm-simd-threaded.mjs ort-wasm-simd-threaded.wasm)
if [ -f "$DEST/VERSION" ] && [ "$(cat "$DEST/VERSION")" = "$VERSION" ]; then exit 0; fi
if ! command -v npm >/dev/null 2>&1; then
    echo "npm not found: the page will draw on the server only (install Node.js and rerun $0)" >&2
    exit 0
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
(cd "$TMP" && npm pack --silent "onnxruntime-web@$VERSION" >/dev/null && tar xzf onnxruntime-web-*.tgz)
mkdir -p "$DEST"
for f in "${FILES[@]}"; do cp "$TMP/package/dist/$f" "$DEST/"; done
cp "$TMP/package/package.json" "$DEST/package.json"  # name, version and licence (MIT, Microsoft)
echo "$VERSION" > "$DEST/VERSION"
echo "onnxruntime-web $VERSION → $DEST"
