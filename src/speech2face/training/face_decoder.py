"""Train the face decoder (descriptor → canonical face) and its identity proxy on face shards.

    python -m speech2face.training.face_decoder shards/pairs shards/faces_extra shards/utkface \
        --out runs/face_decoder --export src/speech2face/assets/face_decoder.safetensors

Two stages in one run folder, each checkpointed and resumable (re-run the same command after a
kill): (1) distil dlib's descriptor into ``IdentityProxy``; (2) train ``FaceDecoder`` with
texture, landmark, image, image-gradient and identity losses. Speakers are split by
``speech2face.data.splits`` so the dev faces' identities are never trained on.
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
from ..data.splits import split_of
from ..faces import FACE_SIZE
from ..models.face_decoder import FaceDecoder, FaceDecoderConfig
from ..models.identity_proxy import IdentityProxy
from ..models.warp import tps_warp
from ..weights import save_weights
from .runs import Run


@dataclass
class FaceDecoderTrainConfig:
    shards: list[str] = field(default_factory=list)
    out: str = "runs/face_decoder"
    seed: int = 0
    batch_size: int = 32
    proxy_epochs: int = 3
    proxy_lr: float = 1e-3
    decoder_minutes: float = 30.0  # wall-clock budget of stage 2 (CPU)
    decoder_lr: float = 1e-3
    w_texture: float = 1.0
    w_image: float = 1.0
    w_gradient: float = 1.0
    w_landmarks: float = 1.0
    w_identity: float = 0.1
    w_perceptual: float = 0.1
    background: tuple[int, int, int] = (236, 236, 236)  # plain light background of the canonical face
    proxy_from: str | None = None  # reuse a trained proxy.pt (e.g. from an earlier run)
    checkpoint_every: int = 100  # steps
    limit: int | None = None  # faces, for a quick try
    decoder: dict = field(default_factory=lambda: FaceDecoderConfig().to_dict())


def load_faces(shards: list[str], size: int, limit: int | None = None) -> dict:
    """Every face sample → uint8 images (N, 3, S, S), landmarks (N, 68, 2) in S px, descriptors, splits."""
    from PIL import Image

    images, landmarks, descs, speakers, sources = [], [], [], [], []
    for sample in ShardDataset(shards, fields=["face", "lm68", "desc"]):
        face = Image.fromarray(sample["face"]).resize((size, size), Image.Resampling.LANCZOS)
        images.append(np.asarray(face).transpose(2, 0, 1))
        landmarks.append(sample["lm68"] * (size / FACE_SIZE))
        descs.append(sample["desc"])
        speakers.append(sample["json"]["speaker"])
        sources.append(sample["json"]["source"])
        if limit and len(images) >= limit:
            break
    return {
        "images": torch.from_numpy(np.stack(images)),
        "landmarks": torch.from_numpy(np.stack(landmarks)).float(),
        "desc": torch.from_numpy(np.stack(descs)).float(),
        "speakers": speakers,
        "sources": sources,
        "dev": torch.tensor([split_of(s) == "dev" for s in speakers]),
    }


def face_mask(landmarks: torch.Tensor, size: int, feather: float = 0.08) -> torch.Tensor:
    """Soft ellipse around face and hair from 68 landmarks: (N, 68, 2) → (N, 1, S, S) in [0, 1].

    Without a segmentation model the head is approximated by an ellipse spanning the jaw width
    (widened for hair), from well above the brows (hair) down to the chin.
    """
    jaw_left, jaw_right, chin = landmarks[:, 0], landmarks[:, 16], landmarks[:, 8]
    brows_y = landmarks[:, 17:27, 1].mean(1)
    width = (jaw_right[:, 0] - jaw_left[:, 0]).clamp_min(1.0)
    top, bottom = brows_y - 0.75 * width, chin[:, 1] + 0.05 * width
    cx, cy = (jaw_left[:, 0] + jaw_right[:, 0]) / 2, (top + bottom) / 2
    a, b = 0.68 * width, (bottom - top) / 2
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij")
    r = (((xs - cx[:, None, None]) / a[:, None, None]) ** 2 + ((ys - cy[:, None, None]) / b[:, None, None]) ** 2).sqrt()
    return torch.sigmoid((1 - r) / feather)[:, None]


def photographed_area(images: torch.Tensor) -> torch.Tensor:
    """Where the aligned crop shows the photo, not the flat fill that alignment adds outside it:
    (N, 3, S, S) uint8 → (N, 1, S, S) soft mask. The fill is the exact colour shared by ≥ 2 corners."""
    x = images.float()
    corners = torch.stack([x[:, :, 0, 0], x[:, :, 0, -1], x[:, :, -1, 0], x[:, :, -1, -1]], 1)  # (N, 4, 3)
    same = (corners[:, :, None] - corners[:, None]).abs().amax(-1) < 0.5  # (N, 4, 4)
    votes = same.sum(-1)  # how many corners share each corner's colour
    fill = corners[torch.arange(len(x)), votes.argmax(1)]  # (N, 3)
    has_fill = votes.amax(1) >= 2
    flat = ((x - fill[:, :, None, None]).abs().amax(1, keepdim=True) < 2.5) & has_fill[:, None, None, None]
    flat = flat.float()  # (N, 1, S, S)
    border = torch.zeros_like(flat)
    border[..., 0, :] = border[..., -1, :] = border[..., :, 0] = border[..., :, -1] = 1
    filled = flat * border  # grow from the border through flat pixels only: skin of the fill's colour stays
    for _ in range(x.shape[-1]):
        grown = F.max_pool2d(filled, 3, 1, 1) * flat
        if torch.equal(grown, filled):
            break
        filled = grown
    valid = 1 - filled
    valid = -F.max_pool2d(-valid, 5, 1, 2)  # erode: drop the resampled seam
    return F.avg_pool2d(valid, 5, 1, 2)  # feather


def plain_background(images: torch.Tensor, landmarks: torch.Tensor, color: tuple[int, int, int],
                     batch: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """Canonical targets: outside the head ellipse a plain colour; inside it the photo.

    Returns ``(targets uint8 (N, 3, S, S), known uint8 (N, 1, S, S))``: ``known`` is 0 where the
    head ellipse reaches beyond the photographed area (tight crops such as UTKFace cut hair and
    forehead off): there the target is unknown and the losses leave the decoder free.
    """
    targets, known = [], []
    bg = torch.tensor(color, dtype=torch.float32).view(1, 3, 1, 1)
    for i in range(0, len(images), batch):
        chunk = images[i:i + batch]
        head, photo = face_mask(landmarks[i:i + batch], images.shape[-1]), photographed_area(chunk)
        targets.append((chunk.float() * head + bg * (1 - head)).round().byte())
        known.append(((1 - head * (1 - photo)) * 255).round().byte())
    return torch.cat(targets), torch.cat(known)


def shape_free_textures(images: torch.Tensor, landmarks: torch.Tensor, mean: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """Each face warped so its landmarks sit on the mean shape: uint8 (N, 3, S, S)."""
    out = []
    for i in range(0, len(images), batch):
        x = images[i : i + batch].float() / 255
        lm = landmarks[i : i + batch]
        out.append((tps_warp(x, lm, mean.expand(len(x), -1, -1)) * 255).round().byte())
    return torch.cat(out)


def image_gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def augment(x: torch.Tensor) -> torch.Tensor:
    """Small shifts and brightness/contrast changes: the descriptor should not care."""
    b = x.shape[0]
    dx, dy = np.random.randint(-4, 5, 2)
    x = torch.roll(x, shifts=(int(dy), int(dx)), dims=(2, 3))
    gain = 1 + 0.2 * (torch.rand(b, 1, 1, 1) - 0.5)
    bias = 0.1 * (torch.rand(b, 1, 1, 1) - 0.5)
    x = (x * gain + bias).clamp(0, 1)
    flip = torch.rand(b) < 0.5
    x[flip] = x[flip].flip(3)
    return x


def train_proxy(run: Run, cfg: FaceDecoderTrainConfig, data: dict, train_idx: np.ndarray, dev_idx: np.ndarray) -> IdentityProxy:
    proxy = IdentityProxy(cfg.decoder["descriptor_dim"])
    opt = torch.optim.Adam(proxy.parameters(), lr=cfg.proxy_lr)
    path = run.folder / "proxy.pt"
    if path.is_file():
        proxy.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return proxy.eval()
    steps_per_epoch = len(train_idx) // cfg.batch_size
    for epoch in range(cfg.proxy_epochs):
        proxy.train()
        order = np.random.permutation(train_idx)
        for step in range(steps_per_epoch):
            idx = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            x = augment(data["images"][idx].float() / 255)
            target = F.normalize(data["desc"][idx], dim=1)
            loss = (1 - (proxy(x) * target).sum(1)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        proxy.eval()
        with torch.no_grad():
            cos = torch.cat([(proxy(data["images"][dev_idx[i:i + 256]].float() / 255)
                              * F.normalize(data["desc"][dev_idx[i:i + 256]], dim=1)).sum(1)
                             for i in range(0, len(dev_idx), 256)])
        run.log(stage="proxy", epoch=epoch, train_loss=loss.item(), dev_cosine=cos.mean().item())
        print(f"proxy epoch {epoch}: dev cosine to dlib {float(cos.mean()):.3f}", flush=True)
    torch.save(proxy.state_dict(), path)
    return proxy.eval()


def train(cfg: FaceDecoderTrainConfig, export: Path | None = None) -> dict:
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    run = Run(Path(cfg.out), asdict(cfg))
    dcfg = FaceDecoderConfig.from_dict(cfg.decoder)
    cache = run.folder / "faces.pt"
    if cache.is_file():
        data = torch.load(cache, weights_only=False)
    else:
        t = time.time()
        data = load_faces(cfg.shards, dcfg.size, cfg.limit)
        torch.save(data, cache)
        print(f"loaded {len(data['speakers'])} faces in {time.time() - t:.0f} s", flush=True)
    train_idx = np.flatnonzero(~data["dev"].numpy())
    dev_idx = np.flatnonzero(data["dev"].numpy())
    mean = data["landmarks"][train_idx].mean(0)  # (68, 2)
    proxy_images = data["images"]  # the proxy learns dlib's descriptor from the faces as photographed
    data["targets"], data["known"] = plain_background(data["images"], data["landmarks"], tuple(cfg.background))
    data["textures"] = shape_free_textures(data["targets"], data["landmarks"], mean)
    data["known_textures"] = shape_free_textures(data["known"], data["landmarks"], mean)
    if cfg.proxy_from and not (run.folder / "proxy.pt").is_file():
        import shutil

        shutil.copy(cfg.proxy_from, run.folder / "proxy.pt")
    proxy = train_proxy(run, cfg, {**data, "images": proxy_images}, train_idx, dev_idx)
    for p in proxy.parameters():
        p.requires_grad_(False)
    # identity is compared around the mean descriptor: raw dlib descriptors of different people
    # already have cosine ≈ 0.83, so an uncentred cosine barely tells faces apart
    center = F.normalize(data["desc"][train_idx], dim=1).mean(0)

    model = FaceDecoder(dcfg, mean.clone())
    opt = torch.optim.Adam(model.parameters(), lr=cfg.decoder_lr, betas=(0.5, 0.999))
    state = run.load_checkpoint()
    step, elapsed = 0, 0.0
    if state is not None and state.get("stage") == "decoder":
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step, elapsed = state["step"], state["elapsed"]
        print(f"resumed at step {step}", flush=True)
    budget = cfg.decoder_minutes * 60
    rng = np.random.default_rng(cfg.seed + step)
    model.train()
    tick = time.time()
    while elapsed + (time.time() - tick) < budget:
        idx = rng.choice(train_idx, cfg.batch_size, replace=False)
        desc = data["desc"][idx]
        out = model(desc)
        # where the target is unknown, the output itself stands in: no loss there
        known, known_tex = data["known"][idx].float() / 255, data["known_textures"][idx].float() / 255
        target_img = known * data["targets"][idx].float() / 255 + (1 - known) * out["image"].detach()
        target_tex = known_tex * data["textures"][idx].float() / 255 + (1 - known_tex) * out["texture"].detach()
        gx, gy = image_gradients(out["image"])
        tx, ty = image_gradients(target_img)
        out_maps, target_maps = proxy.feature_maps(out["image"]), proxy.feature_maps(target_img)
        losses = {
            "texture": F.l1_loss(out["texture"], target_tex),
            "image": F.l1_loss(out["image"], target_img),
            "gradient": F.l1_loss(gx, tx) + F.l1_loss(gy, ty),
            "landmarks": F.mse_loss(out["landmarks"], data["landmarks"][idx]) / dcfg.size,
            "perceptual": sum(F.l1_loss(a, b) for a, b in zip(out_maps, target_maps)) / len(out_maps),
            "identity": (1 - F.cosine_similarity(proxy(out["image"]) - center, F.normalize(desc, dim=1) - center)).mean(),
        }
        loss = sum(getattr(cfg, f"w_{k}") * v for k, v in losses.items())
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 20 == 0:
            run.log(stage="decoder", step=step, loss=loss.item(), **{k: v.item() for k, v in losses.items()})
        if step % cfg.checkpoint_every == 0:
            run.save_checkpoint({"stage": "decoder", "model": model.state_dict(), "optimizer": opt.state_dict(),
                                 "step": step, "elapsed": elapsed + time.time() - tick})
            print(f"step {step}: loss {float(loss):.4f} ({', '.join(f'{k} {float(v):.3f}' for k, v in losses.items())})", flush=True)
    elapsed += time.time() - tick
    run.save_checkpoint({"stage": "decoder", "model": model.state_dict(), "optimizer": opt.state_dict(),
                         "step": step, "elapsed": elapsed})
    result = {"steps": step, "minutes": elapsed / 60, "train_faces": len(train_idx), "dev_faces": len(dev_idx)}
    if export is not None:
        config = {"model": "FaceDecoder", "decoder": dcfg.to_dict(), "training": result,
                  "reproduce": f"python -m speech2face.training.face_decoder {' '.join(cfg.shards)} --out {cfg.out}"}
        result["sha256"] = save_weights(export, model.state_dict(), config)
    run.log(stage="done", **result)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shards", nargs="+", help="face shard folders (speech2face prepare)")
    parser.add_argument("--out", default="runs/face_decoder")
    parser.add_argument("--export", help="write the trained decoder here (safetensors + sha256)")
    parser.add_argument("--minutes", type=float, default=30.0, help="wall-clock budget of the decoder stage")
    parser.add_argument("--proxy-epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--limit", type=int, help="use only the first N faces")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--proxy-from", help="reuse a trained identity proxy (proxy.pt of an earlier run)")
    parser.add_argument("--w-identity", type=float, default=FaceDecoderTrainConfig.w_identity)
    parser.add_argument("--w-perceptual", type=float, default=FaceDecoderTrainConfig.w_perceptual)
    args = parser.parse_args(argv)
    cfg = FaceDecoderTrainConfig(shards=args.shards, out=args.out, seed=args.seed, batch_size=args.batch_size,
                                 proxy_epochs=args.proxy_epochs, decoder_minutes=args.minutes, limit=args.limit,
                                 proxy_from=args.proxy_from, w_identity=args.w_identity,
                                 w_perceptual=args.w_perceptual)
    print(train(cfg, Path(args.export) if args.export else None))


if __name__ == "__main__":
    main()
