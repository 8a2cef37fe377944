"""Model card (markdown) and residual plots (PNG) for a trained age model."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from model.config import EVAL_BANDS  # noqa: E402


def residual_plots(y_true: np.ndarray, y_pred: np.ndarray, out_dir: Path) -> list[Path]:
    """Write three PNGs about test-split errors; returns their paths.

    `predicted_vs_true.png` (scatter with the identity line), `residuals_by_age.png`
    (prediction minus truth against true age, with the 18 and 25 thresholds) and
    `mae_by_band.png` (MAE and bias per evaluation band).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    true = np.asarray(y_true, dtype=float)
    pred = np.asarray(y_pred, dtype=float)
    residual = pred - true
    paths = []

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(true, pred, s=4, alpha=0.4)
    top = float(max(true.max(initial=1), pred.max(initial=1))) + 2
    ax.plot([0, top], [0, top], color="black", linewidth=1)
    ax.set(xlabel="true age (years)", ylabel="estimated age (years)", xlim=(0, top), ylim=(0, top),
           title="Estimated vs true age (test split)")
    paths.append(_save(fig, out_dir / "predicted_vs_true.png"))

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.scatter(true, residual, s=4, alpha=0.4)
    ax.axhline(0, color="black", linewidth=1)
    for age in (18, 25):
        ax.axvline(age, color="red", linestyle="--", linewidth=0.8)
    ax.set(xlabel="true age (years)", ylabel="estimate - truth (years)",
           title="Residuals by true age (dashed: 18 and 25)")
    paths.append(_save(fig, out_dir / "residuals_by_age.png"))

    names, maes, biases = [], [], []
    for name, low, high in EVAL_BANDS:
        mask = (true >= low) & (true < high)
        names.append(f"{name}\n(n={int(mask.sum())})")
        maes.append(float(np.abs(residual[mask]).mean()) if mask.any() else 0.0)
        biases.append(float(residual[mask].mean()) if mask.any() else 0.0)
    fig, ax = plt.subplots(figsize=(8, 4))
    positions = np.arange(len(names))
    ax.bar(positions - 0.2, maes, width=0.4, label="MAE")
    ax.bar(positions + 0.2, biases, width=0.4, label="bias")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(positions, names, fontsize=8)
    ax.set(ylabel="years", title="Error by age band (test split)")
    ax.legend()
    paths.append(_save(fig, out_dir / "mae_by_band.png"))
    return paths


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _fmt(value: object, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _share(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def model_card(config: dict, metrics: dict, dataset: dict) -> str:
    """Markdown model card from the training config, metrics ({"test": ..., "valid": ...})
    and dataset facts (fingerprint, rows per split, source folder)."""
    test = metrics.get("test", {})
    lines = [
        f"# Age model card: {config.get('backbone')} at {config.get('size')} px",
        "",
        "## Model",
        f"- Architecture: `keras.applications` {config.get('backbone')} (ImageNet weights: "
        f"{config.get('weights')}) with a {config.get('head')} head; input raw RGB pixels "
        f"{config.get('size')}x{config.get('size')} (preprocessing inside the model); output age "
        "in years.",
        f"- Training: {config.get('head_epochs')} head-only epochs, then up to "
        f"{config.get('epochs')} fine-tuning epochs ({config.get('epochs_run')} run; best: epoch "
        f"{config.get('best_epoch')}, head epochs included); Huber loss (delta "
        f"{config.get('huber_delta')}), "
        f"AdamW with cosine decay, flip + shift augmentation, seed {config.get('seed')}, "
        f"backend {config.get('backend')}, dtype policy {config.get('dtype_policy')}.",
        f"- Reproduce: `{config.get('command') or 'checkout-age model train ...'}`",
        "",
        "## Data",
        f"- Face set: `{dataset.get('faces_dir')}`, fingerprint `{dataset.get('fingerprint')}`.",
        "- Rows used: " + ", ".join(f"{k} {v}" for k, v in (dataset.get("rows") or {}).items())
        + "; split by image content hash (copies of one image never straddle splits).",
        "",
        "## Test-split results (flip test-time augmentation)",
        f"- n = {test.get('n')}, MAE {_fmt(test.get('mae'))} years, RMSE {_fmt(test.get('rmse'))}, "
        f"bias {_fmt(test.get('bias'))}.",
        f"- True minors (<18, n = {test.get('n_minors')}) estimated 18+: "
        f"{_share(test.get('minors_pred_ge_18'))}; estimated 25+ (Challenge-25 false "
        f"positives): {_share(test.get('minors_pred_ge_25'))}.",
        f"- True 18-24 year olds (n = {test.get('n_adults_18_24')}) estimated under 18: "
        f"{_share(test.get('adults_18_24_pred_lt_18'))}.",
        "",
        "| band | n | MAE | bias |",
        "| --- | ---: | ---: | ---: |",
    ]
    for band, row in test.get("by_band", {}).items():
        lines.append(f"| {band} | {row['n']} | {_fmt(row['mae'])} | {_fmt(row['bias'])} |")
    if test.get("by_gender"):
        lines += ["", "| gender | n | MAE | bias |", "| --- | ---: | ---: | ---: |"]
        for gender, row in test["by_gender"].items():
            lines.append(f"| {gender} | {row['n']} | {_fmt(row['mae'])} | {_fmt(row['bias'])} |")
    lines += [
        "",
        "Plots: `plots/predicted_vs_true.png`, `plots/residuals_by_age.png`, `plots/mae_by_band.png`.",
        "",
        "## Intended use and limits",
        "- Batch analytics of checkout photos: age segments of purchases, and a screening signal "
        "for age-restricted sales (\"Challenge 25\"). An error of several years cannot decide "
        "whether one person is under 18: a flag means a sale deserves a look, not proof.",
        "- Errors differ by age band and gender (tables above); teenagers tend to be over-aged and "
        "older adults under-aged. Faces unlike the training set (pose, lighting, occlusion, "
        "other populations) may be worse: evaluate on your own labelled photos first "
        "(`checkout-age model evaluate`).",
        "- Face photos are personal data: keep them only as long as the retention rule allows.",
        "",
    ]
    return "\n".join(lines)
