"""Train the face decoder (descriptor → canonical portrait) on face shards.

    python -m speech2face.training.face_decoder shards/pairs shards/faces_extra shards/utkface \
        --out runs/face_decoder --refiner-minutes 15 --export src/speech2face/assets/face_decoder.safetensors

The decoder draws the portrait frame at 224 px: the whole head on a plain light background,
mouth closed. Its targets are the portrait crops of the shards with the head cut out by GrabCut
(``speech2face.training.heads``; cached in the run folder), and landmarks whose lips are put
together (``close_mouths``).

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
the descriptor it was drawn from. Identities are split by ``speech2face.data.splits``: dev faces are never fitted on, and the
refiner also leaves the 'val' identities out, so the choice to ship it is made on faces it never
saw.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..data import ShardDataset
from ..data.splits import tuning_split_of
from ..evaluation import canonical
from ..faces import FACE_SIZE
from ..models.face_decoder import FaceDecoder, FaceDecoderConfig
from ..models.warp import tps_warp
from ..runtime import available_cpus
from ..weights import quantize_rows, save_weights
from .calibrate_drawing import calibrate_drawing
from .heads import fill_mouths, plausible_region
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


def load_faces(shards: list[str], size: int, limit: int | None = None) -> dict:
    """Every face sample's portrait crop (the whole head) → uint8 images (N, 3, S, S), landmarks
    (N, 68, 2) in S px, descriptors (N, D), speakers."""
    from PIL import Image

    image_field, landmark_field = "portrait", "portrait_lm68"
    images, landmarks, descs, speakers = [], [], [], []
    for sample in ShardDataset(shards, fields=[image_field, landmark_field, "desc"]):
        if image_field not in sample:
            raise SystemExit(f"{sample['__key__']}: these shards have no {image_field}.jpg; prepare them again "
                             "with this version (speech2face prepare)")
        face = Image.fromarray(sample[image_field]).resize((size, size), Image.Resampling.LANCZOS)
        images.append(np.asarray(face).transpose(2, 0, 1))
        landmarks.append(sample[landmark_field] * (size / FACE_SIZE))
        descs.append(sample["desc"])
        speakers.append(sample["json"]["speaker"])
        if limit and len(images) >= limit:
            break
    return {
        "images": torch.from_numpy(np.stack(images)),
        "landmarks": torch.from_numpy(np.stack(landmarks)).float(),
        "desc": torch.from_numpy(np.stack(descs)).float(),
        "speakers": speakers,
    }


def border_connected(flat: torch.Tensor) -> torch.Tensor:
    """(N, S, S) bool → the flat pixels connected to the image border (8-neighbourhood): the fill
    grows in from the border through flat pixels only, so skin of the fill's colour stays."""
    import cv2

    out = torch.zeros_like(flat)
    for i, mask in enumerate(flat.numpy().astype(np.uint8)):
        _, labels = cv2.connectedComponents(mask, connectivity=8)
        edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
        out[i] = torch.from_numpy(np.isin(labels, edge[edge != 0]))
    return out


def photographed_area(images: torch.Tensor) -> torch.Tensor:
    """Where the aligned crop shows the photo, not the flat fill that alignment adds outside it:
    (N, 3, S, S) uint8 → (N, 1, S, S) soft mask, feathered. The fill is the exact colour shared by ≥ 2 corners."""
    x = images.float()
    corners = torch.stack([x[:, :, 0, 0], x[:, :, 0, -1], x[:, :, -1, 0], x[:, :, -1, -1]], 1)  # (N, 4, 3)
    same = (corners[:, :, None] - corners[:, None]).abs().amax(-1) < 0.5  # (N, 4, 4)
    votes = same.sum(-1)  # how many corners share each corner's colour
    fill = corners[torch.arange(len(x)), votes.argmax(1)]  # (N, 3)
    has_fill = votes.amax(1) >= 2
    flat = ((x - fill[:, :, None, None]).abs().amax(1, keepdim=True) < 2.5) & has_fill[:, None, None, None]
    valid = 1 - border_connected(flat[:, 0])[:, None].float()  # (N, 1, S, S)
    # erode (drop the resampled seam), then feather inwards over 2r px: where a crop ends, the fit
    # on faces that show a pixel meets the fit that also has the cropped ones, and their difference
    # has to fade in rather than draw a line across the forehead
    r = max(2, x.shape[-1] // 32)
    valid = -F.max_pool2d(-valid, 2 * r + 1, 1, r)
    return F.avg_pool2d(valid, 2 * r + 1, 1, r, count_include_pad=False)


UPPER_INNER_LIP, LOWER_INNER_LIP = list(canonical.UPPER_INNER_LIP), list(canonical.LOWER_INNER_LIP)
LOWER_OUTER_LIP = [55, 56, 57, 58, 59]
CHIN = {6: 0.25, 7: 0.4, 8: 0.5, 9: 0.4, 10: 0.25}  # jaw points and how much of the lips' closing they follow


def close_mouths(landmarks: torch.Tensor, gap: float) -> torch.Tensor:
    """(N, 68, 2) landmarks of talking faces → the same faces with the mouth closed: the lower lip
    moves up until the inner lips are ``gap`` × mouth width apart, the chin follows part of the
    way (a jaw drops less than the lips part). The landmark map learns closed mouths, and textures
    warped onto a closed mean shape squeeze teeth and open mouths into the line between the lips."""
    lm = landmarks.clone()
    upper, lower = lm[:, UPPER_INNER_LIP, 1], lm[:, LOWER_INNER_LIP, 1]  # (N, 3) y, down is +
    width = (lm[:, 54] - lm[:, 48]).norm(dim=1, keepdim=True)  # (N, 1)
    shift = ((upper + gap * width) - lower).clamp(max=0)  # (N, 3) ≤ 0: up, each inner point onto its partner
    lm[:, LOWER_INNER_LIP, 1] += shift
    mean_shift = shift.mean(dim=1)  # (N,)
    lm[:, LOWER_OUTER_LIP, 1] += mean_shift[:, None]
    for point, share in CHIN.items():
        lm[:, point, 1] += share * mean_shift
    return lm


def _head_mask_job(args) -> np.ndarray:
    from .heads import head_mask

    image, landmarks, photographed = args
    return head_mask(image, landmarks, photographed)


def head_masks(images: torch.Tensor, landmarks: torch.Tensor, photographed: torch.Tensor, workers: int,
               work_size: int = 128) -> torch.Tensor:
    """GrabCut head masks (``speech2face.training.heads``) of every face: uint8 images (N, 3, S, S),
    landmarks (N, 68, 2) px, photographed (N, 1, S, S) uint8 (soft, 255 = photographed) →
    (N, 1, S, S) uint8 in {0, 255}.
    Cut at ``work_size`` px (GrabCut's cost grows with the pixels; the silhouette does not need
    more) on ``workers`` processes, then scaled back to S."""
    import multiprocessing as mp

    from tqdm import tqdm

    size = images.shape[-1]
    small = F.interpolate(images.float(), size=(work_size, work_size), mode="area").round().byte()
    seen = F.interpolate(photographed.float() / 255, size=(work_size, work_size), mode="area") > 0.5
    scale = work_size / size
    jobs = ((small[i].permute(1, 2, 0).numpy(), (landmarks[i] * scale).numpy(), seen[i, 0].numpy())
            for i in range(len(images)))
    with mp.get_context("spawn").Pool(workers) as pool:
        masks = list(tqdm(pool.imap(_head_mask_job, jobs, chunksize=16), total=len(images), desc="head masks",
                          unit="face", mininterval=10))
    masks = torch.from_numpy(np.stack(masks))[:, None]  # (N, 1, w, w)
    return (F.interpolate(masks, size=(size, size), mode="bilinear", align_corners=False) > 0.5).byte() * 255


def head_targets(images: torch.Tensor, heads: torch.Tensor, photographed: torch.Tensor, region: torch.Tensor,
                 color: tuple[int, int, int], batch: int = 512) -> dict[str, torch.Tensor]:
    """What the decoder learns from portraits with head masks (uint8, S px; ``region`` bool: where a
    head can be, ``training.heads.plausible_region``):

    * ``targets`` (N, 3): the head on the plain background — what the refiner restores;
    * ``known`` (N, 1): where that is known (the photographed area);
    * ``textures`` (N, 4): the photo's colours and the head mask as the 4th channel;
    * ``known_textures`` (N, 4): colours are known inside the head only (so hair is not averaged
      with background: the silhouette decides where the head ends), the mask wherever photographed
      and wherever no head can be (there it is known to be 0, photographed or not).
    """
    out = {k: [] for k in ("targets", "known", "textures", "known_textures")}
    bg = torch.tensor(color, dtype=torch.float32).view(1, 3, 1, 1)
    for i in range(0, len(images), batch):
        x, head = images[i:i + batch].float(), heads[i:i + batch].float() / 255
        seen = photographed[i:i + batch].float() / 255
        nowhere = (~region[i:i + batch]).float()
        soft = F.avg_pool2d(head, 3, 1, 1, count_include_pad=False)  # a 1 px anti-aliased edge
        inner = -F.max_pool2d(-head, 5, 1, 2)  # eroded 2 px: edge pixels mix head and background
        out["targets"].append((x * soft + bg * (1 - soft)).round().byte())
        out["known"].append((seen * 255).round().byte())
        out["textures"].append(torch.cat([x, head * 255], 1).round().byte())
        mask_known = torch.maximum(seen, nowhere)
        out["known_textures"].append(torch.cat([(seen * inner * 255).expand(-1, 3, -1, -1), mask_known * 255], 1).round().byte())
    return {k: torch.cat(v) for k, v in out.items()}


def shape_free_textures(images: torch.Tensor, landmarks: torch.Tensor, mean: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """Each face warped so its landmarks sit on the mean shape: uint8 (N, 3, S, S)."""
    out = []
    for i in range(0, len(images), batch):
        x = images[i : i + batch].float() / 255
        lm = landmarks[i : i + batch]
        out.append((tps_warp(x, lm, mean.expand(len(x), -1, -1)) * 255).round().byte())
    return torch.cat(out)


def ridge_solver(x: torch.Tensor, lam: float) -> torch.Tensor:
    """Centred inputs (N, D) float64 → (D, N), the map from centred targets to ridge weights."""
    return torch.linalg.solve(x.T @ x + lam * torch.eye(x.shape[1], dtype=x.dtype), x.T)


def fit_ridge_with_unknowns(x: torch.Tensor, y: torch.Tensor, known: torch.Tensor, lam: float, iterations: int,
                            chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """Least squares ``y ≈ x W + b`` where some targets are unknown.

    x (N, D) centred float64; y, known (N, P) uint8 (known: 255 = observed). Unknown entries
    start at the observed mean of their column and are replaced by the fit's prediction
    ``iterations`` times (EM for a Gaussian model with missing values). Columns are independent,
    so they are processed ``chunk`` at a time to bound memory. Returns W (D, P), b (P,) float32.
    """
    solver = ridge_solver(x, lam)
    weights, biases = [], []
    for c in range(0, y.shape[1], chunk):
        yc, kc = y[:, c:c + chunk].double() / 255, known[:, c:c + chunk].double() / 255
        mean = (yc * kc).sum(0) / kc.sum(0).clamp_min(1e-6)
        filled = kc * yc + (1 - kc) * mean
        for _ in range(iterations + 1):
            mean = filled.mean(0)
            w = solver @ (filled - mean)
            filled = kc * yc + (1 - kc) * (x @ w + mean)
        weights.append(w.float())
        biases.append(mean.float())
    return torch.cat(weights, 1), torch.cat(biases)


@torch.no_grad()
def set_descriptor_range(model: FaceDecoder, x: torch.Tensor, variance: float = 0.99, quantile: float = 0.99) -> None:
    """The decoder's valid input range from centred training descriptors x (N, D): the principal
    axes holding ``variance`` of their variance, whitening along them, and the ``quantile`` of
    the whitened lengths."""
    evals, evecs = torch.linalg.eigh(x.T @ x / len(x))
    evals, evecs = evals.flip(0), evecs.flip(1)  # largest first
    k = int((evals.cumsum(0) / evals.sum() < variance).sum()) + 1
    axes = evecs[:, :k]  # (D, k)
    whitening = torch.zeros_like(evecs)
    whitening[:, :k] = axes / evals[:k].sqrt()
    model.projection.copy_((axes @ axes.T).float())
    model.whitening.copy_(whitening.float())
    model.max_radius.copy_(torch.quantile((x @ whitening).norm(dim=1), quantile).float())


@torch.no_grad()
def fit_linear(model: FaceDecoder, desc: torch.Tensor, landmarks: torch.Tensor, textures: torch.Tensor,
               known_textures: torch.Tensor, lam: float, iterations: int) -> None:
    """Stage 1: the closed-form fit of both linear maps on the given (training) faces.

    desc (N, D); landmarks (N, 68, 2) px; textures, known_textures (N, 3, S, S) uint8."""
    unit = F.normalize(desc.double(), dim=1)
    model.descriptor_mean.copy_(unit.mean(0).float())
    x = unit - unit.mean(0)
    set_descriptor_range(model, x)
    lm = landmarks.reshape(len(x), -1).double()
    lm_weight = ridge_solver(x, lam) @ (lm - lm.mean(0))
    model.landmarks_head.weight.copy_(lm_weight.T.float())
    model.landmarks_head.bias.copy_(lm.mean(0).float())
    n = len(x)
    tex_weight, tex_bias = fit_ridge_with_unknowns(x, textures.reshape(n, -1), known_textures.reshape(n, -1),
                                                   lam, iterations)
    model.texture_head.weight.copy_(tex_weight.T)
    model.texture_head.bias.copy_(tex_bias)


def load_training_faces(run: Run, cfg: FaceDecoderTrainConfig, dcfg: FaceDecoderConfig) -> dict:
    """Portraits at the decoder's size (cached in the run folder) with their canonical targets:
    heads cut out by GrabCut (also cached), mouths painted shut."""
    cache = run.folder / "faces.pt"
    if cache.is_file():
        data = torch.load(cache, weights_only=False)
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
        heads = torch.load(heads_cache, weights_only=False)
    else:
        t = time.time()
        heads = head_masks(data["images"], data["landmarks"], photographed, cfg.workers or available_cpus())
        torch.save(heads, heads_cache)
        print(f"cut {len(heads)} heads out in {time.time() - t:.0f} s", flush=True)
    region = plausible_region(data["landmarks"], dcfg.size)  # (N, 1, S, S) bool
    images = fill_mouths(data.pop("images"), data["landmarks"]) if cfg.close_mouths else data.pop("images")
    data.update(head_targets(images, heads * region, photographed, region, tuple(dcfg.background)))
    return data


def train(cfg: FaceDecoderTrainConfig, export: Path | None = None) -> dict:
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    run = Run(Path(cfg.out), asdict(cfg))
    dcfg = FaceDecoderConfig.from_dict({**cfg.decoder, "refiner": cfg.refiner_channels if cfg.refiner_minutes > 0 else ()})
    data = load_training_faces(run, cfg, dcfg)
    split = np.array(data["tuning"])
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
    if export is not None:
        config = {"model": "FaceDecoder", "decoder": dcfg.to_dict(), "training": result,
                  "reproduce": f"python -m speech2face.training.face_decoder {' '.join(cfg.shards)} --out {cfg.out}"
                               + (f" --size {dcfg.size}" if dcfg.size != 224 else "")
                               + (f" --refiner-minutes {cfg.refiner_minutes:g}" if model.refiner is not None else "")
                               + (f" --calibration-rounds {cfg.calibration_rounds}"
                                  if cfg.calibration_rounds != FaceDecoderTrainConfig.calibration_rounds else "")}
        # the texture map (4 × 224² outputs × 128) is stored as int8 rows with a scale each: a quarter
        # of its float32 size, within one grey level of the float decoder's drawings
        tensors = quantize_rows(model.state_dict(), {"texture_head.weight"})
        result["sha256"] = save_weights(export, tensors, config)
    run.log(stage="done", **result)
    return result


def gaussian_blur(images: torch.Tensor, sigma: torch.Tensor, radius: int = 6) -> torch.Tensor:
    """Separable Gaussian blur with one sigma per image: (B, C, S, S), sigma (B,) px → (B, C, S, S)."""
    b, c, h, w = images.shape
    taps = torch.arange(-radius, radius + 1, dtype=images.dtype)
    kernel = torch.exp(-taps[None] ** 2 / (2 * sigma[:, None] ** 2))
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (B·C, 2r + 1)
    x = F.pad(images.reshape(1, b * c, h, w), (radius,) * 4, mode="replicate")
    x = F.conv2d(x, kernel.view(b * c, 1, 1, -1), groups=b * c)
    x = F.conv2d(x, kernel.view(b * c, 1, -1, 1), groups=b * c)
    return x.view(b, c, h, w)


def random_patches(target: torch.Tensor, known: torch.Tensor, patch: int,
                   rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The same random ``patch``-px window of each image and its known mask (the whole image where
    it is no larger): restoring blur is local, so the refiner learns as well from windows, at a
    fraction of the cost of whole 224 px portraits."""
    size = target.shape[-1]
    if patch <= 0 or patch >= size:
        return target, known
    corners = rng.integers(0, size - patch + 1, size=(len(target), 2))
    pick = lambda x: torch.stack([img[:, y:y + patch, x0:x0 + patch] for img, (y, x0) in zip(x, corners)])
    return pick(target), pick(known)


def restoration_loss(restored: torch.Tensor, target: torch.Tensor, known: torch.Tensor, edge_weight: float) -> torch.Tensor:
    """L1 of (B, 3, P, P) images on the known pixels (B, 1, P, P), plus ``edge_weight`` × L1 of their
    horizontal and vertical differences: a pixel loss alone is met by a restoration a little softer
    than the photo (the safe middle of the edges it could draw); matching the gradients asks for
    the edge itself."""
    loss = ((restored - target).abs() * known).mean()
    if edge_weight:
        for dim in (2, 3):
            d_restored, d_target = restored.diff(dim=dim), target.diff(dim=dim)
            both = known.narrow(dim, 0, known.shape[dim] - 1) * known.narrow(dim, 1, known.shape[dim] - 1)
            loss = loss + edge_weight * ((d_restored - d_target).abs() * both).mean()
    return loss


def train_refiner(run: Run, cfg: FaceDecoderTrainConfig, model: FaceDecoder, data: dict, train_idx: np.ndarray) -> dict:
    """Stage 2: the refiner learns to restore detail that blur took from real faces.

    Inputs are canonical training faces blurred by a Gaussian of random width (``cfg.blur_sigma``,
    which spans how blurry the linear decoding is: σ ≈ 1 px at 128 px gives its sharpness), targets
    the faces themselves, loss L1 on the known pixels. A restorer brings back what blur hides
    (edges of eyes, brows, lips, hair) as photos show it; trained on blur alone it has no way to
    invent texture, which is the point: an adversarial refiner on 2 CPU cores drew streaks instead.
    The linear maps stay fixed. Checkpointed and resumable."""
    state = run.load_checkpoint()
    opt = torch.optim.Adam(model.refiner.parameters(), lr=cfg.refiner_lr)
    step, elapsed = 0, 0.0
    if state is not None and state.get("stage") == "refiner":
        model.refiner.load_state_dict(state["refiner"])
        opt.load_state_dict(state["opt"])
        step, elapsed = state["step"], state["elapsed"]
        torch.set_rng_state(state["torch_rng"])
        print(f"resumed at step {step}", flush=True)

    def checkpoint() -> None:
        run.save_checkpoint({"stage": "refiner", "refiner": model.refiner.state_dict(), "opt": opt.state_dict(),
                             "step": step, "elapsed": elapsed + time.time() - tick, "torch_rng": torch.get_rng_state()})

    rng = np.random.default_rng(cfg.seed + step)
    lo, hi = cfg.blur_sigma
    model.refiner.train()
    tick = time.time()
    while elapsed + (time.time() - tick) < cfg.refiner_minutes * 60:
        idx = rng.choice(train_idx, cfg.batch_size, replace=False)
        target, known = data["targets"][idx].float() / 255, data["known"][idx].float() / 255  # (B, 3|1, S, S)
        target, known = random_patches(target, known, cfg.refiner_patch, rng)  # (B, 3|1, P, P)
        flip = torch.from_numpy(rng.random(len(idx)) < 0.5)
        target[flip], known[flip] = target[flip].flip(3), known[flip].flip(3)
        sigma = torch.empty(len(idx)).uniform_(lo, hi)
        loss = restoration_loss(model.refiner(gaussian_blur(target, sigma)), target, known, cfg.edge_weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 20 == 0:
            run.log(stage="refiner", step=step, l1=loss.item())
        if step % cfg.checkpoint_every == 0:
            checkpoint()
            print(f"refiner step {step}: L1 {loss.item():.4f}", flush=True)
    checkpoint()
    elapsed += time.time() - tick
    model.refiner.eval()
    return {"refiner_steps": step, "refiner_minutes": elapsed / 60, "refiner_train_faces": len(train_idx)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shards", nargs="+", help="face shard folders (speech2face prepare)")
    parser.add_argument("--out", default="runs/face_decoder")
    parser.add_argument("--export", help="write the trained decoder here (safetensors + sha256)")
    parser.add_argument("--refiner-minutes", type=float, default=0.0,
                        help="wall-clock budget of the detail refiner (0: linear decoder only)")
    parser.add_argument("--batch-size", type=int, default=FaceDecoderTrainConfig.batch_size)
    parser.add_argument("--limit", type=int, help="use only the first N faces")
    parser.add_argument("--calibration-rounds", type=int, default=FaceDecoderTrainConfig.calibration_rounds,
                        help="rounds of the drawing calibration through the dlib port (0: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=224, help="side of the decoded face (px)")
    args = parser.parse_args(argv)
    cfg = FaceDecoderTrainConfig(shards=args.shards, out=args.out, seed=args.seed, batch_size=args.batch_size,
                                 refiner_minutes=args.refiner_minutes, limit=args.limit,
                                 calibration_rounds=args.calibration_rounds,
                                 decoder={**FaceDecoderConfig().to_dict(), "size": args.size,
                                          "refiner_unshuffle": 2 if args.size >= 192 else 1})
    print(train(cfg, Path(args.export) if args.export else None))


if __name__ == "__main__":
    main()
