"""Contact sheets: many faces on one image, each labelled with its input's name."""

from __future__ import annotations

import re

import numpy as np
from PIL import Image, ImageDraw, ImageFont

CAPTION_LINES = 3  # a longer name is shortened in its middle
LINE_HEIGHT = 12  # px, PIL's default bitmap font
CHAR_WIDTH = 6  # px, PIL's default bitmap font


def caption_lines(label: str, width: int) -> list[str]:
    """A name wrapped to lines of at most ``width`` characters, broken after '_', '-', '.' or ' '
    where it can be; at most CAPTION_LINES lines, a longer name losing its middle ('...')."""
    budget = width * CAPTION_LINES
    if len(label) > budget:
        keep = budget - 3
        label = label[: keep - keep // 2] + "..." + label[len(label) - keep // 2:]
    lines = [""]
    for token in re.findall(r"[^_\-. ]*[_\-. ]?", label):
        while len(token) > width:  # a token longer than a line is cut
            room = width - len(lines[-1])
            lines[-1] += token[:room]
            token = token[room:]
            lines.append("")
        if len(lines[-1]) + len(token) > width:
            lines.append("")
        lines[-1] += token
    lines = [ln for ln in lines if ln]
    if len(lines) > CAPTION_LINES:  # breaking at separators wasted room: plain chunks fit the budget
        lines = [label[i:i + width] for i in range(0, len(label), width)]
    return lines


def contact_sheet(images: list[np.ndarray], labels: list[str], tile: int = 160, cols: int = 6) -> Image.Image:
    """(H, W, 3) uint8 images → one RGB image, ``cols`` per row, the full name under each (wrapped)."""
    cols = max(1, min(cols, len(images)))
    rows = (len(images) + cols - 1) // cols
    width = tile // CHAR_WIDTH
    captions = [caption_lines(label, width) for label in labels]
    caption = 2 + LINE_HEIGHT * max((len(c) for c in captions), default=1)
    sheet = Image.new("RGB", (cols * tile, rows * (tile + caption)), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for n, (img, lines) in enumerate(zip(images, captions)):
        x, y = (n % cols) * tile, (n // cols) * (tile + caption)
        sheet.paste(Image.fromarray(img).resize((tile, tile), Image.Resampling.LANCZOS), (x, y))
        for i, line in enumerate(lines):
            draw.text((x + 2, y + tile + 1 + i * LINE_HEIGHT), line, fill="black", font=font)
    return sheet
