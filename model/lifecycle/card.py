"""Model card (markdown) and residual plots (PNG) for a trained age model."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from model.config import EVAL_BANDS, Settings  # noqa: E402


def residual_plots(y_true: np.ndarray, y_pred: np.ndarray, out_dir: Path, *,
                   legal_age: int = Settings.legal_age,
                   challenge_age: int = Settings.challenge_age) -> list[Path]:
    """Write three PNGs about test-split errors; returns their paths.

    `predicted_vs_true.png` (scatter with the identity line), `residuals_by_age.png`
    (prediction minus truth against true age, dashed at the legal and challenge ages) and
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
    for age in (legal_age, challenge_age):
        ax.axvline(age, color="red", linestyle="--", linewidth=0.8)
    ax.set(xlabel="true age (years)", ylabel="estimate - truth (years)",
           title=f"Residuals by true age (dashed: {legal_age} and {challenge_age})")
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


def reliability_plot(calibration: dict, out_dir: Path) -> Path:
    """`reliability.png`: mean predicted P(minor) vs observed share of minors per probability bin.

    Args:
        calibration: `model.calibration.calibration_metrics` figures (its `reliability` rows).
        out_dir: the version's plots folder.
    """
    rows = [r for r in calibration["reliability"] if r["n"]]
    legal = calibration["legal_age"]
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="black", linewidth=1, label="perfectly calibrated")
    ax.plot([r["mean_p"] for r in rows], [r["observed_minor_share"] for r in rows], marker="o",
            label=f"{calibration['n']} faces, {calibration['minors']} minors")
    for r in rows:
        ax.annotate(str(r["n"]), (r["mean_p"], r["observed_minor_share"]), fontsize=7,
                    textcoords="offset points", xytext=(4, -10))
    ax.set(xlabel=f"predicted P(age < {legal:g})", ylabel=f"observed share under {legal:g}",
           xlim=(0, 1), ylim=(0, 1), title="Reliability of P(minor) (n per bin)")
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, Path(out_dir) / "reliability.png")


def calibration_lines(calibration: dict | None) -> list[str]:
    """Model-card markdown for `calibration_metrics` figures (a note when there are none)."""
    if not calibration:
        return ["## Calibration", "",
                "- None: this version has no `calibration.json`; scoring leaves age_low, "
                "age_high and p_under_legal_age empty (NULL).", ""]
    legal = calibration["legal_age"]
    target = calibration["coverage_target"]
    cov = calibration["coverage"]
    n = calibration["n"]
    margin = 1.96 * (cov * (1 - cov) / n) ** 0.5 if n else 0.0
    lines = [
        f"## Calibration (measured on {calibration.get('measured_on', 'the test split')}; "
        f"fitted on {calibration.get('fitted_on', 'held-out faces')})",
        "",
        f"- {_share(target)} intervals (age_low..age_high) covered {_share(cov)} of {n} faces "
        f"(± {100 * margin:.1f} points, 95 % sampling margin): "
        f"{'within' if abs(cov - target) <= 0.02 else 'OUTSIDE'} the target "
        f"{_share(target - 0.02)}-{_share(target + 0.02)}; mean width "
        f"{_fmt(calibration['mean_width_years'], 1)} years.",
        f"- P(age < {legal:g}): Brier score {_fmt(calibration['brier'], 4)} over "
        f"{calibration['minors']} minors (always answering the share of minors scores "
        f"{_fmt(calibration['brier_base_rate'], 4)}). Plot: `plots/reliability.png`.",
        f"- Method `{calibration.get('method', 'predicted_age')}`: "
        + _METHOD_NOTES.get(calibration.get("method", "predicted_age"), "") + " Coverage is "
        f"worst for true ages {calibration['worst_band']}.",
        _gap_line(calibration.get("reliability_worst_gap")),
        "",
        "| true age band | n | coverage | mean width |",
        "| --- | ---: | ---: | ---: |",
    ]
    for band, row in calibration["coverage_by_band"].items():
        lines.append(f"| {band} | {row['n']} | {_share(row['coverage'])} | "
                     f"{_fmt(row['mean_width_years'], 1)} |")
    lines += ["", "| predicted P | n | mean P | observed share |", "| --- | ---: | ---: | ---: |"]
    for row in calibration["reliability"]:
        lines.append(f"| {row['p_from']:.1f}-{row['p_to']:.1f} | {row['n']} | "
                     f"{_fmt(row['mean_p'], 3)} | {_fmt(row['observed_minor_share'], 3)} |")
    return [*lines, ""]


_METHOD_NOTES = {
    "true_age": "intervals from the model's error distribution at each true age, so each age "
                "band (teenagers included) is covered about the stated share; P(minor) by "
                "Bayes' rule over those errors with the held-out faces' age mix as prior.",
    "predicted_age": "intervals fitted per estimated age, so a group the model systematically "
                     "mis-ages (teenagers) is covered less.",
}


def _gap_line(gap: dict | None) -> str:
    if not gap:
        return "- No reliability bin has 20 or more faces: too few to judge P(minor) per bin."
    return (f"- Largest reliability gap over bins with 20+ faces: {gap['gap']:.3f} (bin from "
            f"{gap['p_from']:.1f}, {gap['n']} faces; goal at most 0.10).")


def policy_lines(curve: dict | None, challenge_age: int) -> list[str]:
    """Model-card markdown for a `model.evaluation.policy.policy_curve` (nothing without one)."""
    if not curve:
        return []
    legal, until = curve["legal_age"], curve["young_adult_until"]
    lines = [
        "## Flagging policy: minors caught vs adults flagged (test split)",
        "",
        f"Each rule flags an age-restricted sale for an auditor's look. Minors caught: share of "
        f"the {curve['n_minors']} true minors (under {legal:g}) flagged; adults flagged: share of "
        f"the {curve['n_young_adults']} aged {legal:g}-{until - 1} and of the "
        f"{curve['n_older_adults']} aged {until}+. The daily reports apply Challenge "
        f"{challenge_age} (setting `CHECKOUT_AGE_CHALLENGE_AGE`, marked *in force*).",
        "",
        f"| rule | minors caught | {legal:g}-{until - 1} flagged | {until}+ flagged | all flagged |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]

    def row(name: str, figures: dict) -> str:
        return (f"| {name} | {_share(figures['minors_flagged'])} | "
                f"{_share(figures['young_adults_flagged'])} | "
                f"{_share(figures['older_adults_flagged'])} | {_share(figures['all_flagged'])} |")

    for figures in curve["age_rules"]:
        mark = " (*in force*)" if figures["threshold"] == challenge_age else ""
        lines.append(row(f"estimated age < {figures['threshold']:g}{mark}", figures))
    for figures in curve.get("probability_rules") or []:
        lines.append(row(f"P(under {legal:g}) >= {figures['threshold']:g}", figures))
    if not curve.get("probability_rules"):
        lines += ["", "No probability rules: this version has no calibration."]
    return [*lines, ""]


def serving_lines(serving: dict | None) -> list[str]:
    """The card's serving-artifact section (what the score job runs), from its manifest."""
    if not serving:
        return ["## Serving", "- No serving artifact: the score job runs the `.keras` model "
                "(TensorFlow in every worker).", ""]
    if not serving.get("verified"):
        return ["## Serving", f"- {serving['runtime']} artifact refused: it differed from Keras "
                f"by up to {serving['max_abs_diff_vs_keras_years']:.3f} years on the validation "
                "split; the score job runs the `.keras` model.", ""]
    lines = ["## Serving (validation split, flip test-time augmentation)",
             f"- {serving['runtime']} artifact `{serving['file']}`, run in **"
             f"{serving['precision']}**; fp32 matches Keras within "
             f"{serving['max_abs_diff_vs_keras_years']:.4f} years on "
             f"{serving['validation_faces']} faces (allowed: "
             f"{serving['max_diff_allowed_years']}).",
             "", "| precision | MAE | minors estimated at the challenge age or over |", "| --- | ---: | ---: |"]
    for name in ("f32", "bf16"):
        if name in serving and serving[name].get("measured", True):
            row = serving[name]
            lines.append(f"| {name} | {_fmt(row['mae'], 3)} | "
                         f"{_share(row['minors_pred_ge_challenge'])} |")
    if "bf16" in serving and not serving["bf16"].get("measured", True):
        lines.append("\nbf16 not measured: the CPU that published this version has no bf16 "
                     "(OpenVINO runs f32 under a bf16 hint), so the artifact runs f32.")
    elif "bf16" in serving:
        lines.append(f"\nbf16 is used only when its MAE is at most "
                     f"{serving['bf16_max_mae_increase']} years worse than fp32's, its "
                     "Challenge-25 rate is not worse and no face's estimate differs from "
                     f"Keras's by more than {serving.get('bf16_max_diff_years', '-')} years "
                     f"(here: {_fmt(serving['bf16'].get('max_abs_diff_vs_keras_years'), 2)}).")
    return [*lines, ""]


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


def _profile_line(config: dict) -> str:
    """How the model was trained: the profile and what it fine-tuned (model/training/profiles.py)."""
    name = config.get("profile") or "(not recorded)"
    if config.get("imported_from"):
        return (f"{name}, trained elsewhere and imported from `{config['imported_from']}` "
                f"(device: {config.get('device') or 'not recorded'}); evaluated here.")
    if config.get("feature_cache"):
        return (f"{name}: layers up to `{config.get('frozen_until')}` frozen with ImageNet "
                "weights (their activations computed once, mirrored images included); the "
                "later blocks and the head fine-tuned.")
    return f"{name}: full fine-tuning (every layer)."


def model_card(config: dict, metrics: dict, dataset: dict) -> str:
    """Markdown model card from the training config, metrics ({"test": ..., "valid": ...})
    and dataset facts (fingerprint, rows per split, source folder)."""
    test = metrics.get("test", {})
    legal = test.get("legal_age", Settings.legal_age)
    challenge = test.get("challenge_age", Settings.challenge_age)
    lines = [
        f"# Age model card: {config.get('backbone')} at {config.get('size')} px",
        "",
        "## Model",
        f"- Architecture: `keras.applications` {config.get('backbone')} (ImageNet weights: "
        f"{config.get('weights')}) with a {config.get('head')} head; input raw RGB pixels "
        f"{config.get('size')}x{config.get('size')} (preprocessing inside the model); output age "
        "in years.",
        f"- Profile: {_profile_line(config)}",
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
        f"- True minors (<{legal}, n = {test.get('n_minors')}) estimated {legal}+: "
        f"{_share(test.get('minors_pred_ge_legal'))}; estimated {challenge}+ "
        f"(Challenge-{challenge} false positives): {_share(test.get('minors_pred_ge_challenge'))}.",
        f"- True {legal}-{challenge - 1} year olds (n = {test.get('n_young_adults')}) estimated "
        f"under {legal}: {_share(test.get('young_adults_pred_lt_legal'))}.",
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
    lines += ["", *calibration_lines(test.get("calibration"))]
    lines += policy_lines(test.get("policy_curve"), challenge)
    lines += serving_lines(metrics.get("serving"))
    lines += [
        "Plots: `plots/predicted_vs_true.png`, `plots/residuals_by_age.png`, `plots/mae_by_band.png`.",
        "",
        "## Intended use and limits",
        "- Batch analytics of checkout photos: age segments of purchases, and a screening signal "
        f"for age-restricted sales (\"Challenge {challenge}\"). An error of several years cannot "
        f"decide whether one person is under {legal}: a flag means a sale deserves a look, not "
        "proof.",
        "- Errors differ by age band and gender (tables above); teenagers tend to be over-aged and "
        "older adults under-aged. Faces unlike the training set (pose, lighting, occlusion, "
        "other populations) may be worse: evaluate on your own labelled photos first "
        "(`checkout-age model evaluate`).",
        "- Face photos are personal data: keep them only as long as the retention rule allows.",
        "",
    ]
    return "\n".join(lines)
