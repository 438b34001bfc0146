"""Face decoder after Cole et al. (2017): descriptor → landmarks + shape-free texture → warped face.

Two linear maps from the (centred, unit) descriptor give the 68 landmarks of the canonical frame
and the face's texture warped to the mean shape; a thin-plate spline moves the texture onto the
landmarks. Separating shape from texture is what lets a simple model keep a face sharp and
recognisable: textures of different people line up pixel by pixel, so their average does not
smear eyes and mouths across each other. Both maps have a closed-form least-squares fit
(``speech2face.training.decoder_fit.fit_linear``), which is what makes the decoder trainable on a
CPU from ten thousand faces; on identities never seen, dlib recognises the decoded face as the
original nearly always.

Optional ``looks`` (``speech2face.models.looks``) replace the average hair, outline and shoulders
outside the inner face by one of K modes of real portraits, chosen from the descriptor. An optional ``refiner`` (a small residual U-Net trained to restore real faces from blurred copies)
brings back the detail a least-squares fit averages away: the edges of eyes, brows, lips and hair.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..sizes import BACKGROUND_RGB, DESCRIPTOR_DIM, FACE_SIZE
from . import portrait_frame
from .looks import Looks
from .warp import tps_system, warp_controls, warp_with

N_LANDMARKS = 68


@dataclass(frozen=True)
class FaceDecoderConfig:
    descriptor_dim: int = DESCRIPTOR_DIM  # input: dlib face descriptor
    size: int = FACE_SIZE  # px, side of the output image
    refiner: tuple[int, ...] = ()  # channels of the detail refiner per scale; () for none
    portrait: bool = True  # draws the portrait frame (whole head); False: the tight face crop (old weights)
    alpha: bool = True  # the texture carries a 4th channel, the head's silhouette, composited over background
    background: tuple[int, int, int] = BACKGROUND_RGB  # plain light background behind the silhouette
    alpha_softness: float = 0.04  # width of the silhouette's edge, in units of the alpha channel
    refiner_unshuffle: int = 2  # the refiner works at 1/k of the size on k×k pixel blocks (k = 2 at 224 px)
    looks: int = 0  # hair, ears, neck and shoulders drawn as one of this many modes (models.looks); 0: none
    looks_grid: int = 112  # px side at which the looks' corrections are stored
    looks_features: int = 8  # head features the look is chosen by
    frame_scale: float = 1.0  # < 1: the head drawn this much smaller, on shoulders (models.portrait_frame)
    frame_anchor: float = 0.1  # the point (S/2, frame_anchor · S) stays where it is when the head is scaled

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FaceDecoderConfig":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        tuples = {k: tuple(known[k]) for k in ("refiner", "background") if k in known}
        return cls(**{**known, **tuples})

    @property
    def channels(self) -> int:
        """Channels of the shape-free texture: RGB, plus the silhouette with ``alpha``."""
        return 4 if self.alpha else 3


class Refiner(nn.Module):
    """Image → image + detail: a small U-Net whose output is added to its input.

    (B, 3, S, S) → (B, 3, S, S). S must be divisible by k·2^(len(channels) - 1). The detail is
    one luminance channel added to R, G and B alike: sharpness is structure in brightness, and
    leaving colour to the linear decoder keeps the refiner from shifting skin tones."""

    def __init__(self, channels: tuple[int, ...], unshuffle: int = 1) -> None:
        super().__init__()
        self.k = unshuffle  # k×k pixel blocks become channels: a 224 px face costs what a 112 px one does
        self.inp = nn.Sequential(nn.Conv2d(3 * self.k ** 2, channels[0], 3, padding=1), nn.LeakyReLU(0.2))
        self.down = nn.ModuleList(
            nn.Sequential(nn.Conv2d(a, b, 4, stride=2, padding=1), nn.GroupNorm(8, b), nn.LeakyReLU(0.2),
                          nn.Conv2d(b, b, 3, padding=1), nn.GroupNorm(8, b), nn.LeakyReLU(0.2))
            for a, b in zip(channels[:-1], channels[1:]))
        self.up = nn.ModuleList(
            nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(b, a, 3, padding=1),
                          nn.GroupNorm(8, a), nn.LeakyReLU(0.2))
            for a, b in zip(channels[:-1], channels[1:]))
        self.merge = nn.ModuleList(nn.Conv2d(2 * a, a, 3, padding=1) for a in channels[:-1])
        self.out = nn.Conv2d(channels[0], self.k ** 2, 3, padding=1)
        nn.init.zeros_(self.out.weight)  # starts as the identity: detail is learned, never required
        nn.init.zeros_(self.out.bias)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.inp(nn.functional.pixel_unshuffle(image * 2 - 1, self.k))
        skips = []
        for down in self.down:
            skips.append(x)
            x = down(x)
        for up, merge, skip in zip(reversed(self.up), reversed(self.merge), reversed(skips)):
            x = torch.nn.functional.leaky_relu(merge(torch.cat([up(x), skip], 1)), 0.2)
        return image + 0.5 * torch.tanh(nn.functional.pixel_shuffle(self.out(x), self.k))  # (B, 1, S, S) over RGB


class FaceDecoder(nn.Module):
    def __init__(self, config: FaceDecoderConfig = FaceDecoderConfig()) -> None:
        super().__init__()
        self.config = config
        d, s = config.descriptor_dim, config.size
        self.register_buffer("descriptor_mean", torch.zeros(d))  # mean unit descriptor of the training faces
        # the range the linear maps were fitted on: the subspace the centred training descriptors
        # span (projection (D, D) onto the principal axes holding 99 % of their variance), their
        # whitening within it (D, D), and the largest whitened length (99th percentile) they reach
        self.register_buffer("projection", torch.eye(d))
        self.register_buffer("whitening", torch.eye(d))
        self.register_buffer("max_radius", torch.tensor(float("inf")))
        self.register_buffer("mean_landmarks", torch.zeros(N_LANDMARKS, 2))  # mean shape, output px: (68, 2)
        self.landmarks_head = nn.Linear(d, N_LANDMARKS * 2)  # centred descriptor → landmarks (px)
        self.texture_head = nn.Linear(d, config.channels * s * s)  # centred descriptor → shape-free texture in [0, 1]
        self.refiner = Refiner(config.refiner, config.refiner_unshuffle) if config.refiner else None
        self.looks = (Looks(config.looks, s, config.looks_grid, d, config.looks_features)
                      if config.looks else None)

    def centred(self, desc: torch.Tensor) -> torch.Tensor:
        """(B, D) → (B, D): unit length (dlib descriptors have norm ≈ 1), minus the training mean,
        kept to the subspace real faces span, and pulled back towards the mean where it lies
        further out than the training faces do.

        A linear map extrapolates without limit: real dlib descriptors span only ~70 of their 128
        dimensions, and a descriptor predicted from a voice (and exaggerated) that strays into the
        others, or too far, would otherwise draw a caricature no photo resembles."""
        x = desc / desc.norm(dim=1, keepdim=True).clamp_min(1e-6) - self.descriptor_mean
        x = x @ self.projection
        radius = (x @ self.whitening).norm(dim=1, keepdim=True).clamp_min(1e-6)
        return x * (self.max_radius / radius).clamp(max=1.0)

    def first_layer(self, desc: torch.Tensor, pool: int = 4) -> torch.Tensor:
        """f_dec of the Speech2Face loss: what the decoder's linear maps make of the descriptor,
        (B, D) → (B, 136 + 3·(S/pool)²): landmarks in units of the image side, and the texture
        averaged over pool×pool pixels (the same average of the map's rows, by linearity), which
        keeps the loss cheap for a batch of predictions while weighing errors as the decoder does."""
        x = self.centred(desc)
        lm = nn.functional.linear(x, self.landmarks_head.weight) / self.config.size
        s, d, c = self.config.size, self.config.descriptor_dim, self.config.channels
        rows = nn.functional.avg_pool2d(self.texture_head.weight.T.reshape(d, c, s, s), pool).reshape(d, -1)
        return torch.cat([lm, x @ rows], dim=1)

    def shape_free(self, desc: torch.Tensor, look: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Everything before the warp: desc (B, D) → x (B, D) centred, landmarks (B, 68, 2),
        texture (B, C, S, S) (the look drawn on it, with looks: ``look`` (B,) chosen or given),
        ``controls`` (B, K, 2) and the TPS ``system`` (B, K + 3, K + 3), ``rhs`` (B, K + 3, 2) whose
        solution ``composite`` samples the texture through. The solve sits between the two halves
        because ONNX has none: exported decoders are these two halves as two graphs."""
        x = self.centred(desc)
        s = self.config.size
        landmarks = self.landmarks_head(x).view(-1, N_LANDMARKS, 2)
        texture = self.texture_head(x).view(-1, self.config.channels, s, s)
        state = {"x": x, "landmarks": landmarks}
        if self.looks is not None:
            state["look"] = self.looks.choose(x) if look is None else look
            texture = self.looks(texture, x, state["look"])
        src, controls = warp_controls(self.mean_landmarks.expand(x.shape[0], -1, -1), landmarks, s, s)
        state["system"], state["rhs"] = tps_system(controls, src)  # the backward map: output → texture
        state.update(texture=texture, controls=controls)
        return state

    def base(self, desc: torch.Tensor, look: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The linear decoder (and the look chosen, or the given ``look`` (B,) indices): desc (B, D)
        → image (B, 3, S, S), texture (B, C, S, S), landmarks (B, 68, 2); with ``alpha`` also the
        silhouette (B, 1, S, S) the image was composited with; with looks, ``look`` (B,)."""
        state = self.shape_free(desc, look)
        return self.composite(state, torch.linalg.solve(state["system"], state["rhs"]))

    def composite(self, state: dict[str, torch.Tensor], coef: torch.Tensor) -> dict[str, torch.Tensor]:
        """``shape_free``'s state and the solved TPS coefficients (B, K + 3, 2) → ``base``'s output."""
        warped = warp_with(state["texture"], state["controls"], coef)
        out = {k: state[k] for k in ("texture", "landmarks", "look") if k in state}
        out["image"] = warped[:, :3]
        if self.config.alpha:
            out["alpha"] = self.silhouette(warped[:, 3:])
            background = torch.tensor(self.config.background, dtype=warped.dtype, device=warped.device) / 255
            out["image"] = warped[:, :3] * out["alpha"] + background.view(1, 3, 1, 1) * (1 - out["alpha"])
        return out

    def silhouette(self, alpha: torch.Tensor) -> torch.Tensor:
        """The linear alpha channel (an average of head masks, soft where heads differ) → a crisp
        silhouette: one head drawn, not a fog of the heads it could be."""
        return torch.sigmoid((alpha - 0.5) / self.config.alpha_softness)

    def forward(self, desc: torch.Tensor, look: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """desc (B, D) → image (B, 3, S, S) in [0, 1], base (before refining), texture, landmarks (B, 68, 2)."""
        state = self.shape_free(desc, look)
        return self.finish(state, torch.linalg.solve(state["system"], state["rhs"]))

    def finish(self, state: dict[str, torch.Tensor], coef: torch.Tensor) -> dict[str, torch.Tensor]:
        """``shape_free``'s state and the solved TPS coefficients → ``forward``'s output."""
        out = self.composite(state, coef)
        out["base"] = out["image"]
        if self.refiner is not None:
            out["image"] = self.refine(out["base"].clamp(0, 1))
            if self.config.alpha:  # detail belongs to the head: the background stays plain
                where = self.detail_area(out["alpha"])
                out["image"] = out["base"] + where * (out["image"] - out["base"])
        if self.config.frame_scale < 1 and self.config.alpha:
            out["image"], out["landmarks"] = self.frame(out["image"], out["alpha"], out["texture"], out["landmarks"],
                                                        state["x"], out.get("look"))
        out["image"] = out["image"].clamp(0, 1)
        return out

    def frame(self, image: torch.Tensor, alpha: torch.Tensor, texture: torch.Tensor, landmarks: torch.Tensor,
              x: torch.Tensor | None = None, look: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The drawn head (B, 3, S, S) with its silhouette (B, 1, S, S) → the portrait, the head
        smaller on a neck and shoulders, and its landmarks (B, 68, 2). The silhouette fades out
        over the drawn frame's lowest rows, so the drawn neck runs into the frame's."""
        s = self.config.size
        ramp = ((s - torch.arange(s, dtype=alpha.dtype, device=alpha.device) - 0.5) / (0.08 * s)).clamp(0, 1)
        cheeks = self.looks.cheeks if self.looks is not None else None
        skin = ((texture[:, :3] * cheeks).sum((2, 3)) if cheeks is not None
                else texture[:, :3, s // 2 - 8:s // 2 + 8, s // 4:s // 4 + 16].mean((2, 3)))  # (B, 3)
        background = torch.tensor(self.config.background, dtype=image.dtype, device=image.device) / 255
        hair = long = None
        if self.looks is not None and look is not None:
            from .looks import STYLES

            hair, long = self.looks.hair_rgb(x), (look == STYLES.index("long")).to(image.dtype)
        return portrait_frame.frame(image, alpha * ramp[:, None], landmarks, skin, background,
                                    self.config.frame_scale, self.config.frame_anchor * s, hair, long)

    def detail_area(self, alpha: torch.Tensor, margin: int = 2, border: int = 8) -> torch.Tensor:
        """Where the refiner's detail is kept: the silhouette widened by ``margin`` px (hair edges),
        faded out over ``border`` px at the frame's edge, where a refiner trained on windows of
        photos has seen too little of an edge to know what to do there. (B, 1, S, S) in [0, 1]."""
        widened = nn.functional.max_pool2d(alpha, 2 * margin + 1, 1, margin)
        s = alpha.shape[-1]
        ramp = ((torch.arange(s, dtype=alpha.dtype, device=alpha.device) + 0.5) / border).clamp(max=1)
        ramp = torch.minimum(ramp, ramp.flip(0))  # (S,): 0 at the edges, 1 inside
        return widened * ramp[:, None] * ramp[None, :]

    def refine(self, image: torch.Tensor, chunk: int = 8) -> torch.Tensor:
        """The refiner on (B, 3, S, S). For inference it runs on chunks of 8 images in channels-last
        layout: on CPU that is 2.6× faster per face than one NCHW batch of 32 (same output)."""
        if torch.is_grad_enabled() or torch.jit.is_tracing():  # an exported graph keeps its batch free
            return self.refiner(image)
        return torch.cat([self.refiner(part.contiguous(memory_format=torch.channels_last)).contiguous()
                          for part in image.split(chunk)])
