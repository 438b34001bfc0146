"""Rebuild the README's images from evaluation reports (model outputs only; no true faces).

    python docs/make_images.py reports/dev reports/face_decoder

``reports/dev/reconstructions`` (from ``speech2face evaluate``) gives 24 dev voices' drawn faces,
a fixed random sample; ``reports/face_decoder/grid.png`` (from ``speech2face.evaluation.decoder``)
gives the decoded half of its original | decoded pairs.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from PIL import Image

TILE = 112
OUT = Path(__file__).parent / "images"


def sheet(tiles: list[Image.Image], cols: int) -> Image.Image:
    rows = (len(tiles) + cols - 1) // cols
    canvas = Image.new("RGB", (cols * TILE, rows * TILE), "white")
    for n, tile in enumerate(tiles):
        canvas.paste(tile.resize((TILE, TILE), Image.Resampling.LANCZOS), ((n % cols) * TILE, (n // cols) * TILE))
    return canvas


def main(dev_report: Path, decoder_report: Path) -> None:
    drawn = sorted((dev_report / "reconstructions").glob("*.png"))
    pick = sorted(random.Random(0).sample(drawn, 24))
    sheet([Image.open(p).convert("RGB") for p in pick], 8).save(OUT / "dev_voice_reconstructions.png")
    grid = Image.open(decoder_report / "grid.png").convert("RGB")  # 6 pairs per row: (2·112 + 6) px each
    decoded = [grid.crop((x + TILE, y, x + 2 * TILE, y + TILE))
               for y in range(0, grid.height - TILE + 1, TILE + 6)
               for x in range(0, grid.width - 2 * TILE + 1, 2 * TILE + 6)]
    sheet(decoded, 6).save(OUT / "face_decoder_dev_decoded.png")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
