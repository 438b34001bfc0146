"""Train the face decoder (descriptor → canonical portrait) on face shards.

    speech2face train face-decoder shards/pairs shards/faces_extra shards/utkface \
        --out runs/face_decoder --refiner-minutes 15 --export src/speech2face/assets/face_decoder.safetensors

The decoder draws the portrait frame at 224 px: the whole head on a plain light background,
mouth closed. Its targets are the portrait crops of the shards with the head cut out by GrabCut
(``speech2face.training.heads``; cached in the run folder), and landmarks whose lips are put
together (``training.decoder_targets``). This module is the front end: configuration, the three
stages in order (``training.decoder_fit``, ``training.refiner``, ``training.calibrate_drawing``),
export.

Stage 1 fits the decoder's two linear maps (landmarks; shape-free texture = colour + the head's
silhouette as a 4th channel) in closed form by ridge regression on every non-dev face. Colour is
learned inside heads only and the silhouette wherever photographed; where a tight crop (UTKFace)
does not show part of the frame, those pixels are unknown and are filled by the model's own
prediction, refitting a few times (EM for missing values), so no face teaches the decoder a flat
colour where its hair should be. At drawing time the averaged silhouette is made crisp, so one
head is drawn on the background rather than a fog of the heads a descriptor could belong to.
With ``--refiner-minutes N``, stage 2 trains the detail refiner to restore real portraits from
blurred copies (``train_refiner``), checkpointed and resumable: re-run the same command after a
kill. Stage 3 (``training.calibrate_drawing``) draws training faces, reads them with the torch
port of dlib and folds the inverse of that read-out into the linear heads, so a drawing reads as
the descriptor it was drawn from. Identities are split by ``speech2face.data.splits``: dev faces
are never fitted on, and the refiner also leaves the 'val' identities out, so the choice to ship
it is made on faces it never saw. ``--fit-on all`` fits every stage on every face: a release whose
recipe was fixed that way (its figures on dev then mean nothing).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..data.splits import tuning_split_of
from ..models.face_decoder import FaceDecoder, FaceDecoderConfig
from ..sizes import FACE_SIZE
from ..runtime import available_cpus
from ..weights import load_run_file, quantize_rows, save_weights
from .calibrate_drawing import calibrate_drawing
from .decoder_fit import fit_linear
from .decoder_targets import close_mouths, head_masks, head_targets, load_faces, photographed_area, shape_free_textures
from .heads import fill_mouths, plausible_region
from .refiner import train_refiner
from .runs import Run


@dataclass
class FaceDecoderTrainConfig:
    shards: list[str] = field(default_factory=list)
    out: str = "runs/face_decoder"
    seed: int = 0
    batch_size: int = 16  # refiner steps
    ridge: float = 1e-3  # stage 1: ridge penalty of the linear maps (unit descriptors)
    em_iterations: int = 4  # stage 1: refits that fill unknown pixels with the model's prediction
    refiner_minutes: float = 0.0  # wall-clock budget of stage 2 (CPU); 0 = no refiner
    refiner_lr: float = 5e-4
    refiner_patch: int = 96  # px windows the refiner trains on (0: whole images)
    blur_sigma: tuple[float, float] = (0.6, 2.2)  # px at the decoder's size: the blur the refiner learns to undo
    edge_weight: float = 1.0  # refiner: L1 on the image gradients too, so edges are restored, not only levels
    checkpoint_every: int = 100  # steps
    limit: int | None = None  # faces, for a quick try
    decoder: dict = field(default_factory=lambda: FaceDecoderConfig().to_dict())
    refiner_channels: tuple[int, ...] = (16, 32, 64, 128)
    close_mouths: bool = True  # landmark targets and the mean shape with the lips together (neutral mouth)
    mouth_gap: float = 0.02  # inner-lip gap left by close_mouths, as a share of mouth width (keeps the warp regular)
    workers: int = 0  # processes for head masks (0: the CPUs available)
    calibration_rounds: int = 2  # stage 3: rounds of the drawing calibration (0: none)
    calibration_faces: int = 1500  # training faces drawn and read per round
    fit_on: str = "non-dev"  # "non-dev": dev faces never seen (dev figures); "all": every face (a release)
    looks: bool = False  # stage 4: hair, ears and neck drawn as one hairstyle in one colour, and the portrait frame
    frame_scale: float = 0.8  # with looks: the head drawn this much smaller, on shoulders (models.portrait_frame)
    from_weights: str | None = None  # stages 1–3 taken from this decoder's weights: only the looks are fit


def load_training_faces(run: Run, cfg: FaceDecoderTrainConfig, dcfg: FaceDecoderConfig) -> dict:
    """Portraits at the decoder's size (cached in the run folder) with their canonical targets:
    heads cut out by GrabCut (also cached), mouths painted shut."""
    cache = run.folder / "faces.pt"
    if cache.is_file():
        data = load_run_file(cache)
    else:
        t = time.time()
        data = load_faces(cfg.shards, dcfg.size, cfg.limit)
        torch.save(data, cache)
        print(f"loaded {len(data['speakers'])} faces in {time.time() - t:.0f} s", flush=True)
    data["tuning"] = [tuning_split_of(s) for s in data["speakers"]]
    photographed = torch.cat([(photographed_area(data["images"][i:i + 256]) * 255).round().byte()
                              for i in range(0, len(data["images"]), 256)])  # (N, 1, S, S) uint8: 11 k faces fit in memory
    heads_cache = run.folder / "heads.pt"
    if heads_cache.is_file():
        heads = load_run_file(heads_cache)
    else:
        t = time.time()
        heads = head_masks(data["images"], data["landmarks"], photographed, cfg.workers or available_cpus())
        torch.save(heads, heads_cache)
        print(f"cut {len(heads)} heads out in {time.time() - t:.0f} s", flush=True)
    region = plausible_region(data["landmarks"], dcfg.size)  # (N, 1, S, S) bool
    images = fill_mouths(data.pop("images"), data["landmarks"]) if cfg.close_mouths else data.pop("images")
    data.update(head_targets(images, heads * region, photographed, region, tuple(dcfg.background)))
    return data


def fit_portrait_looks(run: Run, cfg: FaceDecoderTrainConfig, model: FaceDecoder) -> dict:
    """Stage 4: the looks (``training.looks``): hair colour fit on the *train* portrait frames
    (only they show hair; UTKFace crops stop at the forehead), gender and age on the *train*
    UTKFace faces' labels, like the refiner, so val chooses between recipes on people they never
    saw; every face with ``--fit-on all``. Then the portrait frame."""
    from dataclasses import replace

    from ..data import ShardDataset
    from .looks import LooksConfig, fit_looks

    def fit(speaker: str) -> bool:
        return cfg.fit_on == "all" or tuning_split_of(speaker) == "train"

    portraits = load_faces(cfg.shards, model.config.size, cfg.limit,
                           keep=lambda s: not s.startswith("utkface:") and fit(s))
    pick = portraits["speakers"]
    labelled = {"desc": [], "female": [], "age": [], "speakers": []}
    for sample in ShardDataset(cfg.shards, fields=["desc"]):
        meta, speaker = sample["json"].get("meta", {}), sample["json"]["speaker"]
        if meta.get("gender") in ("male", "female") and str(meta.get("age", "")).isdigit() and fit(speaker):
            labelled["desc"].append(sample["desc"])
            labelled["female"].append(float(meta["gender"] == "female"))
            labelled["age"].append(float(meta["age"]))
            labelled["speakers"].append(speaker)
    if len(labelled["desc"]) < 50 or len(pick) < 50:
        raise SystemExit(f"the looks need ≥ 50 portraits and ≥ 50 faces with age and gender labels (UTKFace); "
                         f"these shards give {len(pick)} and {len(labelled['desc'])}")
    labelled["desc"] = torch.from_numpy(np.stack(labelled["desc"])).float()
    summary = fit_looks(model, portraits, labelled, LooksConfig(seed=cfg.seed))
    model.config = replace(model.config, frame_scale=cfg.frame_scale)
    return summary


def train(cfg: FaceDecoderTrainConfig, export: Path | None = None) -> dict:
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    run = Run(Path(cfg.out), asdict(cfg))
    if cfg.from_weights:
        return looks_only(run, cfg, export)
    dcfg = FaceDecoderConfig.from_dict({**cfg.decoder, "refiner": cfg.refiner_channels if cfg.refiner_minutes > 0 else ()})
    data = load_training_faces(run, cfg, dcfg)
    split = np.array(data["tuning"])
    if cfg.fit_on == "all":  # a release: every face trains every stage (its dev figures mean nothing)
        split = np.full(len(split), "train")
    elif cfg.fit_on != "non-dev":
        raise ValueError(f"unknown fit_on {cfg.fit_on!r} (non-dev or all)")
    fit_idx = np.flatnonzero(split != "dev")  # the linear maps see every non-dev face
    drawn = close_mouths(data["landmarks"], cfg.mouth_gap) if cfg.close_mouths else data["landmarks"]
    mean = drawn[fit_idx].mean(0)  # (68, 2)
    model = FaceDecoder(dcfg)
    model.mean_landmarks.copy_(mean)
    t = time.time()
    fit_lm = data["landmarks"][fit_idx]
    # each photo warped from its own landmarks onto the (closed-mouth) mean shape
    textures = shape_free_textures(data.pop("textures")[fit_idx], fit_lm, mean)
    known_textures = shape_free_textures(data.pop("known_textures")[fit_idx], fit_lm, mean)
    fit_linear(model, data["desc"][fit_idx], drawn[fit_idx], textures, known_textures, cfg.ridge, cfg.em_iterations)
    del textures, known_textures
    result = {"fit_faces": len(fit_idx), "dev_faces": int((split == "dev").sum()), "fit_seconds": time.time() - t}
    print(f"linear maps fitted on {len(fit_idx)} faces in {result['fit_seconds']:.0f} s", flush=True)
    run.log(stage="linear", **result)
    if model.refiner is not None:
        result.update(train_refiner(run, cfg, model, data, np.flatnonzero(split == "train")))
    if cfg.calibration_rounds:
        t = time.time()
        train_idx = np.flatnonzero(split == "train")
        pick = np.random.default_rng(cfg.seed).choice(train_idx, min(cfg.calibration_faces, len(train_idx)), replace=False)
        history = calibrate_drawing(model, data["desc"][pick], cfg.calibration_rounds)
        result.update(calibration=history, calibration_seconds=time.time() - t)
        run.log(stage="calibration", rounds=history)
    if cfg.looks:
        t = time.time()
        summary = fit_portrait_looks(run, cfg, model)
        result.update(looks=summary, looks_seconds=time.time() - t)
        run.log(stage="looks", **summary)
    if export is not None:
        result["sha256"] = export_decoder(model, export, cfg, result)
    run.log(stage="done", **result)
    return result


def reproduce_line(cfg: FaceDecoderTrainConfig, refiner: bool) -> str:
    """The command that makes these weights again."""
    size = FaceDecoderConfig.from_dict(cfg.decoder).size
    return (f"speech2face train face-decoder {' '.join(cfg.shards)} --out {cfg.out}"
            + (f" --size {size}" if size != FACE_SIZE else "")
            + (f" --refiner-minutes {cfg.refiner_minutes:g}" if refiner and not cfg.from_weights else "")
            + (f" --calibration-rounds {cfg.calibration_rounds}"
               if cfg.calibration_rounds != FaceDecoderTrainConfig.calibration_rounds else "")
            + (f" --fit-on {cfg.fit_on}" if cfg.fit_on != "non-dev" else "")
            + (" --looks" if cfg.looks else "")
            + (f" --frame-scale {cfg.frame_scale:g}" if cfg.frame_scale != FaceDecoderTrainConfig.frame_scale else "")
            + (f" --from-weights {cfg.from_weights}" if cfg.from_weights else ""))


def export_decoder(model: FaceDecoder, export: Path, cfg: FaceDecoderTrainConfig, result: dict,
                   extra: dict | None = None) -> str:
    """Write the decoder's weights with the command that made them; returns the sha256. The
    texture map (4 × 224² outputs × 128) is stored as int8 rows with a scale each: a quarter of its
    float32 size, within one grey level of the float decoder's drawings."""
    config = {"model": "FaceDecoder", "decoder": model.config.to_dict(), "training": result,
              "reproduce": reproduce_line(cfg, model.refiner is not None), "fit_on": cfg.fit_on, **(extra or {})}
    return save_weights(export, quantize_rows(model.state_dict(), {"texture_head.weight"}), config)


def looks_only(run: Run, cfg: FaceDecoderTrainConfig, export: Path | None) -> dict:
    """``--from-weights``: stage 4 alone on a trained decoder (its stages 1–3 kept as they are, so
    a voice head trained through its linear maps stays valid)."""
    from ..weights import load_module, sha256_of

    if not cfg.looks:
        raise ValueError("--from-weights fits only the looks: give --looks too")
    model, _, base_config = load_module(Path(cfg.from_weights), lambda c: FaceDecoder(
        FaceDecoderConfig.from_dict({**c["decoder"], "looks": 0})), "FaceDecoder")
    if base_config.get("fit_on", "non-dev") != cfg.fit_on:
        print(f"note: {cfg.from_weights} was fit on {base_config.get('fit_on', 'non-dev')!r}, the looks on {cfg.fit_on!r}",
              flush=True)
    t = time.time()
    summary = fit_portrait_looks(run, cfg, model)
    result = {"looks": summary, "looks_seconds": time.time() - t, "base_training": base_config.get("training")}
    run.log(stage="looks", **summary)
    if export is not None:
        result["sha256"] = export_decoder(model, export, cfg, result, {
            "base_weights": {"sha256": sha256_of(Path(cfg.from_weights)), "reproduce": base_config.get("reproduce"),
                             "fit_on": base_config.get("fit_on", "non-dev")}})
    run.log(stage="done", **result)
    return result
