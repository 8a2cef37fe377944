"""Exploratory look at a validated face set: age histogram, sample photo grid, counts.

Counts and plots cover the usable rows (after validation), so they describe the data the
model trains on. The sample grid shows faces: it is a training-data artifact for ML
engineers, written only where asked, never into reports.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from model.config import EVAL_BANDS, band_of
from model.serving.images import decode_face


def describe_ages(usable: pd.DataFrame) -> dict:
    """Counts of a usable set: n, age mean/median/min/max, per band, per gender if present."""
    ages = usable["real_age"].astype(float)
    bands = ages.map(band_of).value_counts()
    counts: dict = {
        "n": len(usable),
        "age_mean": round(float(ages.mean()), 2) if len(ages) else None,
        "age_median": float(ages.median()) if len(ages) else None,
        "age_min": float(ages.min()) if len(ages) else None,
        "age_max": float(ages.max()) if len(ages) else None,
        "by_band": {name: int(bands.get(name, 0)) for name, _, _ in EVAL_BANDS},
    }
    if "gender" in usable.columns:
        genders = usable["gender"].replace("", "unknown").value_counts()
        counts["by_gender"] = {str(g): int(n) for g, n in sorted(genders.items())}
    return counts


def plot_age_histogram(usable: pd.DataFrame, path: Path) -> None:
    """One-year-wide histogram of real ages, band edges marked, saved as PNG."""
    from matplotlib.figure import Figure  # Agg canvas, no pyplot state

    ages = usable["real_age"].astype(float)
    top = int(np.ceil(ages.max())) + 1 if len(ages) else 1
    figure = Figure(figsize=(10, 4.5), layout="constrained")
    axes = figure.add_subplot()
    axes.hist(ages, bins=np.arange(0, top + 1), color="#4C72B0", edgecolor="white", linewidth=0.3)
    for _, low, _ in EVAL_BANDS[1:]:
        axes.axvline(low, color="grey", linestyle=":", linewidth=0.8)
    median = f", median {ages.median():g}" if len(ages) else ""
    axes.set_title(f"Real age of {len(ages)} usable photos{median}")
    axes.set_xlabel("real age, years (dotted: evaluation band edges)")
    axes.set_ylabel("photos")
    figure.savefig(path, dpi=100)


def sample_rows(usable: pd.DataFrame, count: int, seed: int) -> pd.DataFrame:
    """`count` rows drawn with a fixed seed, youngest first."""
    picked = usable.sample(n=min(count, len(usable)), random_state=seed)
    return picked.sort_values("real_age", kind="stable")


def plot_sample_grid(
    usable: pd.DataFrame,
    path: Path,
    *,
    rows: int = 4,
    cols: int = 5,
    seed: int = 1337,
    size: int = 128,
) -> None:
    """A rows x cols grid of sample photos titled with their ages, saved as PNG."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(cols * 2, rows * 2.2), layout="constrained")
    samples = sample_rows(usable, rows * cols, seed)
    for position, (_, sample) in enumerate(samples.iterrows(), start=1):
        axes = figure.add_subplot(rows, cols, position)
        axes.imshow(decode_face(Path(sample["path"]).read_bytes(), size))
        axes.set_title(f"{sample['real_age']:g}")
        axes.axis("off")
    figure.savefig(path, dpi=80)


def write_eda(
    usable: pd.DataFrame, out_dir: Path, *, validation: dict | None = None, seed: int = 1337
) -> dict[str, str]:
    """Write `age_histogram.png`, `sample_grid.png` and `counts.json` into `out_dir`.

    Args:
        usable: validated rows (`real_age`, `path`, optional `gender`).
        out_dir: created if missing.
        validation: the validation summary, stored in counts.json beside the counts.
        seed: picks the sample photos.

    Returns:
        Artifact name -> path written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {
        "age_histogram": out_dir / "age_histogram.png",
        "sample_grid": out_dir / "sample_grid.png",
        "counts": out_dir / "counts.json",
    }
    plot_age_histogram(usable, written["age_histogram"])
    plot_sample_grid(usable, written["sample_grid"], seed=seed)
    counts = {"usable": describe_ages(usable)}
    if validation is not None:
        counts["validation"] = validation
    written["counts"].write_text(json.dumps(counts, indent=2) + "\n")
    return {name: str(path) for name, path in written.items()}
