"""Contact sheets: many faces on one image, each labelled with its input's name."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw


def contact_sheet(images: list[np.ndarray], labels: list[str], tile: int = 160, cols: int = 6) -> Image.Image:
    """(H, W, 3) uint8 images → one RGB image, ``cols`` per row, a caption under each."""
    cols = max(1, min(cols, len(images)))
    rows = (len(images) + cols - 1) // cols
    caption = 14
    sheet = Image.new("RGB", (cols * tile, rows * (tile + caption)), "white")
    draw = ImageDraw.Draw(sheet)
    for n, (img, label) in enumerate(zip(images, labels)):
        x, y = (n % cols) * tile, (n // cols) * (tile + caption)
        sheet.paste(Image.fromarray(img).resize((tile, tile), Image.Resampling.LANCZOS), (x, y))
        draw.text((x + 2, y + tile), label[: tile // 6], fill="black")
    return sheet
