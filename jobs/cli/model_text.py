"""Text output shared by the `checkout-age model` commands (figures, percentages)."""

from __future__ import annotations

import sys

from model.config import Settings


def write(text: str) -> None:
    """Print one line of a command's result on stdout."""
    sys.stdout.write(text + "\n")


def fmt(value: object) -> str:
    """A figure as text: "-" for None, two decimals for a float."""
    return "-" if value is None else f"{value:.2f}" if isinstance(value, float) else str(value)


def pct(value: float | None) -> str:
    """A share as a percentage with one decimal ("-" for None)."""
    return "-" if value is None else f"{100 * value:.1f}%"


def metrics_lines(metrics: dict) -> list[str]:
    """`age_metrics` figures as a few lines: MAE, by band, by gender, the minors' figures."""
    lines = [
        f"n {metrics['n']}  MAE {fmt(metrics['mae'])}  RMSE {fmt(metrics['rmse'])}  "
        f"bias {fmt(metrics['bias'])}",
        "by band: " + ", ".join(f"{band} {fmt(row['mae'])} (n={row['n']})"
                                for band, row in metrics["by_band"].items()),
    ]
    if metrics.get("by_gender"):
        lines.append("by gender: " + ", ".join(f"{g} {fmt(row['mae'])} (n={row['n']})"
                                              for g, row in metrics["by_gender"].items()))
    legal = metrics.get("legal_age", Settings.legal_age)
    challenge = metrics.get("challenge_age", Settings.challenge_age)
    lines.append(  # versions trained before the ages were recorded lack these keys
        f"minors (n={metrics['n_minors']}) estimated {legal}+: "
        f"{pct(metrics.get('minors_pred_ge_legal'))}, {challenge}+: "
        f"{pct(metrics.get('minors_pred_ge_challenge'))}; {legal}-{challenge - 1} "
        f"(n={metrics.get('n_young_adults')}) estimated under {legal}: "
        f"{pct(metrics.get('young_adults_pred_lt_legal'))}")
    return lines
