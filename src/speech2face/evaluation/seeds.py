"""Mean ± sd over several evaluation reports (one per training seed): a dev split of ~150 clips
moves by a few recall points from one seed to the next, so one run is not a result.

    speech2face evaluate seeds reports/dev_seed*/metrics.json
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def row(metrics: dict) -> dict[str, float]:
    """The headline figures of one report's main system (the first), in %, r for age."""
    main = next(iter(metrics["systems"].values()))
    r, d = main["retrieval"]["recall"], main["demographics"]
    out = {f"R@{k}": r[k] for k in ("1", "5", "10")}
    before = metrics.get("before_drawing")
    if before:
        out.update({f"R@{k} before drawing": before["recall"][k] for k in ("1", "5", "10")})
    out.update({
        "gender %": 100 * d["gender"]["agreement"],
        "age r": d["age_correlation"]["r"],
        "ethnicity %": 100 * d["ethnicity"]["agreement"],
        "ethnicity balanced (4) %": 100 * d.get("ethnicity_balanced_4", float("nan")),
        "sharpness": main["quality"]["sharpness_median"],
    })
    return out


def summarize(paths: list[Path]) -> dict[str, dict[str, float]]:
    """{figure: {'mean', 'sd', 'n'}} over the reports (sd with n − 1)."""
    rows = [row(json.loads(Path(p).read_text())) for p in paths]
    keys = [k for k in rows[0] if all(k in r for r in rows)]
    return {k: {"mean": float(np.mean([r[k] for r in rows])),
                "sd": float(np.std([r[k] for r in rows], ddof=1)) if len(rows) > 1 else float("nan"),
                "n": len(rows)} for k in keys}
