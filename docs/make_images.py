"""Rebuild the README's images (model outputs only; the true faces stay in ../shared).

    python docs/make_images.py reports/dev [--voice-weights V] [--decoder-weights D] [--attributes-weights A]

Give the models that never saw dev (the release is refit on every pair, dev included).

* ``portraits_dev.png``: 8 dev speakers, a fixed random sample: the decoder on each speaker's
  true face descriptor, then the voice drawn as the head predicts it, drawn with the voice's
  gender and group (the product), and two more faces of the voice (``variations``). The same
  sheet with the true photos as its first row is written to ``--photos-out`` (default
  ``reports/portraits_dev_with_photos.png``), outside the repository: the photos stay in ../shared.
* ``dev_voice_reconstructions.png``: 24 dev voices, from ``reports/dev/reconstructions``
  (``speech2face evaluate ... --split dev --out reports/dev``).
* with ``--previous-decoder-weights P`` only ``portraits_before_after_dev.png``: the same 8 dev
  speakers, the previous decoder and this one on each true descriptor, then the voice (drawn as
  the head predicts it, not steered) through each; with the photos on top in ``--photos-out``.
"""

from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

TILE = 112
OUT = Path(__file__).parent / "images"
PAIRS = Path(__file__).resolve().parents[2] / "shared" / "data" / "s2f-pairs"


def sheet(tiles: list[np.ndarray], cols: int, labels: list[str] | None = None, label_width: int = 0) -> Image.Image:
    rows = (len(tiles) + cols - 1) // cols
    canvas = Image.new("RGB", (label_width + cols * TILE, rows * TILE), "white")
    draw = ImageDraw.Draw(canvas)
    for n, tile in enumerate(tiles):
        image = Image.fromarray(tile).resize((TILE, TILE), Image.Resampling.LANCZOS)
        canvas.paste(image, (label_width + (n % cols) * TILE, (n // cols) * TILE))
    for r, label in enumerate(labels or []):
        for i, line in enumerate(label.split("\n")):
            draw.text((4, r * TILE + TILE // 2 - 12 + 12 * i), line, fill="black")
    return canvas


def dev_speakers(count: int = 8) -> list[Path]:
    """A fixed random sample of dev clips with a face dlib finds, one per speaker."""
    from speech2face.data.splits import tuning_split_of

    with open(PAIRS / "pairs.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if tuning_split_of(r["identity"]) == "dev"]
    first = {}
    for r in rows:
        first.setdefault(r["identity"], r["stem"])
    return sorted(random.Random(0).sample(sorted(first.values()), count))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dev_report", type=Path, help="speech2face evaluate ... --split dev --out DIR")
    parser.add_argument("--voice-weights", help="voice head that never saw dev (default: the shipped one)")
    parser.add_argument("--decoder-weights", help="face decoder that never saw dev (default: the shipped one)")
    parser.add_argument("--attributes-weights", help="voice attributes fitted without dev (default: the shipped ones)")
    parser.add_argument("--photos-out", type=Path, default=Path("reports/portraits_dev_with_photos.png"),
                        help="the sheet with the true photos on top (not for the repository)")
    parser.add_argument("--previous-decoder-weights", help="draw only the before/after sheet against this decoder")
    args = parser.parse_args()
    if args.previous_decoder_weights:
        return before_after(args)
    from speech2face import load_model
    from speech2face.faces import FaceAnalyzer, load_image

    ours = load_model(voice_weights=args.voice_weights, decoder_weights=args.decoder_weights, device="cpu", attributes_weights=args.attributes_weights)
    plain = load_model(voice_weights=args.voice_weights, decoder_weights=args.decoder_weights, device="cpu",
                       attributes_weights=args.attributes_weights, steer=False)
    analyzer = FaceAnalyzer()
    stems = dev_speakers()
    descriptors = np.stack([analyzer.descriptor(PAIRS / "faces" / f"{s}.jpg") for s in stems])
    clips = [PAIRS / "audio" / f"{s}.opus" for s in stems]
    steered = ours.reconstruct_each(clips, variations=3)
    rows = [ours.renderer.decode(descriptors), [r.image for r in plain.reconstruct_each(clips)],
            [r.image for r in steered], [r.variations[1] for r in steered], [r.variations[2] for r in steered]]
    labels = ["decoder on the\ntrue descriptor", "voice, drawn as\npredicted", "voice, its gender\nand group drawn",
              "another face\nof the voice", "and another"]
    sheet([img for row in rows for img in row], len(stems), labels, label_width=120).save(OUT / "portraits_dev.png")
    photos = [load_image(PAIRS / "faces" / f"{s}.jpg") for s in stems]
    args.photos_out.parent.mkdir(parents=True, exist_ok=True)
    sheet([img for row in [photos, *rows] for img in row], len(stems), ["true photo", *labels],
          label_width=120).save(args.photos_out)
    drawn = sorted((args.dev_report / "reconstructions").glob("*.png"))
    pick = sorted(random.Random(0).sample(drawn, 24))
    sheet([np.asarray(Image.open(p).convert("RGB")) for p in pick], 8).save(OUT / "dev_voice_reconstructions.png")


def before_after(args: argparse.Namespace) -> None:
    """The previous decoder against this one, from the true descriptor and from the voice."""
    from speech2face import load_model
    from speech2face.faces import FaceAnalyzer, load_image

    models = [load_model(voice_weights=args.voice_weights, decoder_weights=weights, device="cpu", attributes_weights=args.attributes_weights,
                         steer=False) for weights in (args.previous_decoder_weights, args.decoder_weights)]
    stems = dev_speakers()
    descriptors = np.stack([FaceAnalyzer().descriptor(PAIRS / "faces" / f"{s}.jpg") for s in stems])
    clips = [PAIRS / "audio" / f"{s}.opus" for s in stems]
    rows = [m.renderer.decode(descriptors) for m in models] + [[r.image for r in m.reconstruct_each(clips)] for m in models]
    labels = ["previous, from\nthe photo", "this release,\nfrom the photo", "previous, from\nthe voice",
              "this release,\nfrom the voice"]
    sheet([img for row in rows for img in row], len(stems), labels, label_width=120).save(OUT / "portraits_before_after_dev.png")
    photos = [load_image(PAIRS / "faces" / f"{s}.jpg") for s in stems]
    out = args.photos_out.with_name("portraits_before_after_dev_with_photos.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet([img for row in [photos, *rows] for img in row], len(stems), ["true photo", *labels], label_width=120).save(out)


if __name__ == "__main__":
    main()
