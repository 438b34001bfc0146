"""Train a voice encoder (speech → face descriptor) with the Speech2Face loss: the trainer of
``speech2face train``.

How to launch it (one process, torchrun on one or several machines): ``training/commands/voice.py``.

The run folder holds the resolved config (config.json), metrics.jsonl, and checkpoint.pt written
after every epoch; re-running the same command resumes from it and reaches the same weights as an
uninterrupted run with the same seed (each epoch's data order and random state derive from the
seed and the epoch number alone). Speakers are split by ``speech2face.data.splits``: 'dev'
speakers are never seen; 'val' speakers (a part of the training speakers) choose the epoch and
the exaggeration factor.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..data import ShardDataset
from ..data.splits import tuning_split_of
from ..evaluation.attributes import EthnicityLogits
from ..evaluation.metrics import retrieval_recall
from ..models.losses import LossConfig, speech2face_loss
from ..models.voice_encoder import VoiceEncoder, VoiceEncoderConfig
from ..weights import load_run_file, save_weights
from .distributed import barrier, init_distributed, rank_slice, shutdown
from .drawn_objective import DrawnObjective, DrawnObjectiveConfig, drawn_recall, ridge_start
from .runs import Run
from .voice_config import VoiceTrainConfig, add_arguments  # noqa: F401 (add_arguments: the train flags)

CROP_SECONDS = (6.0, 4.0, 4.0, 4.0, 3.0, 3.0)  # speaker-embedding views of each clip (augmentation)
EXAGGERATIONS = (1.0, 1.25, 1.5, 2.0, 2.5, 3.0)


# --- data ----------------------------------------------------------------------------------------
def load_pairs(cfg: VoiceTrainConfig, kind: str) -> dict:
    """Every sample with audio: input features, target descriptor, speaker, split."""
    from .. import audio
    from ..models.speaker_encoder import speaker_encoder

    fields_needed = ["desc", "audio"] if kind == "spk" else ["desc", "spec"]
    feats, descs, speakers, genders = [], [], [], []
    for sample in ShardDataset(cfg.shards, fields=fields_needed):  # every rank: every pair (split below)
        if not sample["json"].get("has_audio"):
            continue
        if kind == "spk":  # several crops of the clip through the frozen GE2E: (V, 256)
            wave = sample["audio"]
            views = [audio.fix_length(wave, audio.clip_samples(s), o)
                     for s, o in zip(CROP_SECONDS, ("center", "start", "center", 10**9, "start", 10**9))]
            feats.append(speaker_encoder().embed_many(views))
        else:
            feats.append(sample["spec"])
        descs.append(sample["desc"])
        speakers.append(sample["json"]["speaker"])
        genders.append(sample["json"]["meta"].get("gender", ""))
        if cfg.limit and len(descs) >= cfg.limit:
            break
    return {
        "features": torch.from_numpy(np.stack(feats)),
        "desc": torch.from_numpy(np.stack(descs)).float(),
        "speakers": speakers,
        "genders": genders,
        "split": [tuning_split_of(s) for s in speakers],
    }


def batch_features(data: dict, idx: np.ndarray, kind: str, rng: Optional[np.random.Generator]) -> torch.Tensor:
    x = data["features"][idx]
    if kind == "spk":  # (B, V, 256): a random view when training; otherwise view 0, the whole 6 s
        if rng is None:  # clip, which is what `reconstruct` embeds
            return x[:, 0].float()
        return x[torch.arange(len(idx)), torch.from_numpy(rng.integers(0, x.shape[1], len(idx)))].float()
    return x.float()


# --- loss pieces --------------------------------------------------------------------------------
def loss_functions(cfg: VoiceTrainConfig, device: str):
    """f_dec from the face decoder (identity if none is available) and the distillation classifier."""
    f_dec = None
    try:
        from ..pipeline import load_decoder

        decoder = load_decoder(cfg.decoder_weights, "cpu").decoder.to(device)
        for p in decoder.parameters():
            p.requires_grad_(False)
        f_dec = decoder.first_layer
    except Exception as exc:  # no decoder weights yet: plain L1 on descriptors
        print(f"no face decoder for f_dec ({exc}); using the descriptor itself")
    classifier = EthnicityLogits().to(device) if cfg.distill else None
    return f_dec, classifier


def over_members(pred: torch.Tensor, loss) -> dict:
    """``loss`` (a function of (B, D) → terms) of one prediction, or the mean of each term over an
    ensemble's members (M, B, D)."""
    if pred.dim() == 2:
        return loss(pred)
    each = [loss(p) for p in pred]
    return {k: torch.stack([t[k] for t in each]).mean() for k in each[0]}


def ensemble_loss(pred: torch.Tensor, target: torch.Tensor, f_dec, classifier, loss_cfg: LossConfig) -> dict:
    """The Speech2Face loss of one prediction (B, D), or the mean over members (M, B, D)."""
    return over_members(pred, lambda p: speech2face_loss(p, target, f_dec, classifier, loss_cfg))


def exaggerate(pred: torch.Tensor, center: torch.Tensor, factor: float) -> torch.Tensor:
    """Push predictions away from the mean prediction (the paper's faces are 'exaggerated')."""
    return center + factor * (pred - center)


@torch.no_grad()
def predict(model: VoiceEncoder, data: dict, idx: np.ndarray, kind: str, device: str) -> torch.Tensor:
    model.eval()
    out = [model(batch_features(data, idx[i:i + 256], kind, None).to(device)).cpu() for i in range(0, len(idx), 256)]
    return torch.cat(out) if out else torch.zeros(0, model.config.descriptor_dim)


def descriptor_recall(pred: torch.Tensor, data: dict, idx: np.ndarray) -> dict:
    """Retrieval in descriptor space (cheap stand-in for the image scorer, for tuning only)."""
    ids = [data["speakers"][i] for i in idx]
    if len(set(ids)) < 2:
        return {"1": float("nan"), "5": float("nan"), "10": float("nan")}
    r = retrieval_recall(pred.numpy(), data["desc"][idx].numpy(), ids, (1, 5, 10), 100, 5, 0)
    return r["recall"]


# --- training -----------------------------------------------------------------------------------
def train(cfg: VoiceTrainConfig, export: Optional[Path] = None) -> dict:
    info = init_distributed(cfg.device)
    enc_cfg = VoiceEncoderConfig.from_dict({**cfg.encoder, "variant": cfg.variant})
    torch.manual_seed(cfg.seed)  # the initial weights, identical on every rank and every run
    model = VoiceEncoder(enc_cfg).to(info.device)
    kind = model.input_kind
    run = Run(Path(cfg.out), asdict(cfg)) if info.is_main else None
    barrier(info)
    cache = Path(cfg.out) / f"pairs_{kind}_{cfg.limit or 'all'}.pt"  # decoded features, reused on resume
    if info.is_main and not cache.is_file():  # rank 0 decodes every pair once; the others wait for the file
        tmp = cache.with_suffix(".pt.tmp")
        torch.save(load_pairs(cfg, kind), tmp)
        tmp.replace(cache)
    barrier(info)
    data = load_run_file(cache)
    split = np.array(data["split"])
    train_idx, val_idx, dev_idx = (np.flatnonzero(split == s) for s in ("train", "val", "dev"))
    if cfg.fit_on == "all":  # the recipe was fixed on val: now every pair trains, the last epoch is kept
        if cfg.exaggeration is None:
            raise SystemExit("--fit-on all needs --exaggeration (there is no val left to choose it on)")
        train_idx = np.arange(len(split))
    elif cfg.fit_on != "train":
        raise ValueError(f"unknown fit_on {cfg.fit_on!r} (train or all)")
    loss_cfg = LossConfig(**cfg.loss)
    if cfg.objective == "drawn":
        objective = drawn_objective(cfg, model, data, train_idx, info.device)
        batch_loss = lambda pred, idx: over_members(pred, lambda p: objective(p, idx))  # noqa: E731
        val_recall = lambda pred: drawn_recall(objective, pred, data, val_idx)  # noqa: E731
    elif cfg.objective == "speech2face":
        f_dec, classifier = loss_functions(cfg, info.device)
        batch_loss = lambda pred, idx: ensemble_loss(  # noqa: E731
            pred, data["desc"][idx].to(info.device), f_dec, classifier, loss_cfg)
        val_recall = lambda pred: descriptor_recall(pred, data, val_idx)  # noqa: E731
    else:
        raise ValueError(f"unknown objective {cfg.objective!r} (speech2face or drawn)")
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.5, 0.999), eps=1e-4, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.decay_every, gamma=cfg.lr_decay)
    start_epoch, best = 0, {"epoch": -1, "val_r10": -1.0, "state": None}
    ckpt_path = Path(cfg.out) / "checkpoint.pt"
    if ckpt_path.is_file():
        state = load_run_file(ckpt_path, map_location="cpu")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start_epoch, best = state["epoch"] + 1, state["best"]
        if info.is_main:
            print(f"resumed after epoch {state['epoch']}", flush=True)
    ddp = torch.nn.parallel.DistributedDataParallel(model) if info.world > 1 else model
    for epoch in range(start_epoch, cfg.epochs):
        torch.manual_seed(cfg.seed * 100_003 + epoch)  # dropout etc.: a function of (seed, epoch) only
        rng = np.random.default_rng(cfg.seed * 100_003 + epoch)
        order = rng.permutation(train_idx)
        mine = rank_slice(order, info)  # this rank's share (the same number of steps on every rank)
        if info.world > 1:  # which samples each rank trained on this epoch (rank_samples_<r>.json)
            (Path(cfg.out) / f"rank_samples_{info.rank}.json").write_text(
                json.dumps({"epoch": epoch, "samples": sorted(int(i) for i in mine)}))
        ddp.train()
        totals = []
        for start in range(0, len(mine) - cfg.batch_size // 2, cfg.batch_size):
            idx = mine[start:start + cfg.batch_size]
            x = batch_features(data, idx, kind, rng).to(info.device)
            terms = batch_loss(ddp(x), idx)
            opt.zero_grad()
            terms["total"].backward()
            opt.step()
            sched.step()
            totals.append({k: v.item() for k, v in terms.items()})
        if info.is_main:
            val = val_recall(predict(model, data, val_idx, kind, info.device))
            mean_terms = {k: float(np.mean([t[k] for t in totals])) for k in totals[0]} if totals else {}
            if val["10"] > best["val_r10"] or cfg.fit_on == "all":
                best = {"epoch": epoch, "val_r10": val["10"],
                        "state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
            run.log(epoch=epoch, lr=sched.get_last_lr()[0], world_size=info.world, samples_per_rank=len(mine),
                    train_samples=len(train_idx), val_samples=len(val_idx), **{f"train_{k}": v for k, v in mean_terms.items()},
                    **{f"val_r{k}" if k.isdigit() else f"val_{k}": v for k, v in val.items()})
            if epoch % 10 == 0 or epoch == cfg.epochs - 1:
                print(f"epoch {epoch}: loss {mean_terms.get('total', float('nan')):.4f}, val R@1/5/10 "
                      f"{val['1']:.1f}/{val['5']:.1f}/{val['10']:.1f}", flush=True)
            tmp = ckpt_path.with_suffix(".pt.tmp")
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                        "epoch": epoch, "best": best}, tmp)
            tmp.replace(ckpt_path)
        barrier(info)
    result: dict = {}
    if info.is_main:
        result = finish(cfg, model, best, data, kind, (train_idx, val_idx, dev_idx), info.device, export, val_recall)
        run.log(stage="done", **{k: v for k, v in result.items() if not isinstance(v, dict)})
    shutdown(info)
    return result


def drawn_objective(cfg: VoiceTrainConfig, model: VoiceEncoder, data: dict, train_idx: np.ndarray,
                    device: str) -> DrawnObjective:
    """The 'drawn' objective (through decoder and dlib); a linear head starts from ridge regression
    (a resumed run then loads its checkpoint over it)."""
    from ..pipeline import load_decoder

    config = DrawnObjectiveConfig.from_dict(cfg.drawn)
    head = model.net.mlp if hasattr(model.net, "mlp") else None
    if head is not None and len(head) == 1:
        ridge_start(head[0], batch_features(data, train_idx, "spk", None), data["desc"][train_idx], config.ridge)
    return DrawnObjective(config, load_decoder(cfg.decoder_weights, "cpu").decoder, data, train_idx, device)


def finish(cfg, model, best, data, kind, splits, device, export, val_recall) -> dict:
    """Keep the best epoch on val, choose the exaggeration factor on val by ``val_recall`` (the
    drawings' recall with the 'drawn' objective, the descriptors' otherwise), export."""
    train_idx, val_idx, dev_idx = splits
    if best["state"] is not None:
        model.load_state_dict(best["state"])
    center = predict(model, data, train_idx, kind, device).mean(0)
    val_pred = predict(model, data, val_idx, kind, device)
    if cfg.exaggeration is not None:
        factor, scores = cfg.exaggeration, {}
    else:
        scores = {f: val_recall(exaggerate(val_pred, center, f))["10"] for f in EXAGGERATIONS}
        factor = max(scores, key=scores.get)
    result = {"best_epoch": best["epoch"], "exaggeration": factor, "val_r10_by_exaggeration": scores,
              "fit_on": cfg.fit_on, "n_train": len(train_idx), "n_val": len(val_idx), "n_dev": len(dev_idx)}
    if export is not None:
        config = {"model": "VoiceEncoder", "encoder": model.config.to_dict(), "exaggeration": factor,
                  "training": {**result, "config": asdict(cfg)},
                  "reproduce": cfg.command or f"speech2face train {' '.join(cfg.shards)} --config {cfg.out}/config.json"}
        from ..pipeline import DECODER_WEIGHTS
        from ..weights import shipped
        from ..weights import sha256_of

        decoder = Path(cfg.decoder_weights) if cfg.decoder_weights else shipped(DECODER_WEIGHTS)
        config["decoder_sha256"] = sha256_of(decoder) if decoder.is_file() else None  # the decoder it was trained through
        tensors = {**{f"encoder.{k}": v for k, v in model.state_dict().items()}, "center": center}
        result["sha256"] = save_weights(export, tensors, config)
    return result


def run_from_args(args: argparse.Namespace, command: Optional[str] = None) -> dict:
    """``command``: the line that started the run (stored as the weights' reproduce line)."""
    cfg = VoiceTrainConfig.from_file_and_flags(
        args.config, shards=args.shards or None, out=args.out, variant=args.variant, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, seed=args.seed, device=args.device,
        decoder_weights=args.decoder_weights, limit=args.limit, objective=args.objective, fit_on=args.fit_on,
        exaggeration=args.exaggeration, command=command)
    if args.members:
        cfg.encoder = {**cfg.encoder, "members": args.members}
    if args.head == "linear":
        cfg.encoder = {**cfg.encoder, "head_hidden": []}
    if not cfg.shards:
        raise SystemExit("no shards given (positional SHARDS or 'shards' in --config)")
    return train(cfg, Path(args.export) if args.export else None)
