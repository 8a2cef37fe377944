"""The daily report's statement of the flagging policy in force, and what it costs.

The policy is the rule the reports job applied that day: "estimated age < challenge age"
(run_quality `challenge_age`; setting `CHECKOUT_AGE_CHALLENGE_AGE`, Challenge 25 by default).
Its cost comes from the scoring model's policy curve (`model.evaluation.policy`, measured on its
test split at training): the share of minors it catches and of adults it flags, so an officer
reads the day's flags knowing what the rule misses and whom it bothers.
"""

from __future__ import annotations

from model.errors import UserError
from model.evaluation.policy import describe_age_rule, rule_row


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def model_policy_curve(registry_store: str, version: str | None) -> tuple[dict | None, str | None]:
    """(policy curve of `version`'s test split, None) or (None, why there is none).

    `registry_store` is what `ModelRegistry` opens (`Settings.registry_store`). A registry
    that cannot be read leaves the cost unknown, with the reason, rather than no report.
    """
    if not version:
        return None, "the day's scoring model is not recorded"
    from mlflow.exceptions import MlflowException

    from model.lifecycle.registry import ModelRegistry

    try:
        found = ModelRegistry(registry_store).resolve(version)
    except (UserError, MlflowException, OSError) as exc:
        return None, f"model {version} is not in the registry ({exc})"
    curve = (found.metrics.get("test") or {}).get("policy_curve")
    if not curve:
        return None, f"model {version} was trained before policy figures were recorded"
    return curve, None


def policy_statement(challenge_age: int | None, *, legal_age: int, setting: int, model: str,
                     curve: dict | None, missing: str | None = None) -> dict:
    """What the page says about the policy (pure).

    Args:
        challenge_age: the age the day's flags were made with (run_quality), None if unknown.
        legal_age: minors are under it.
        setting: the challenge age configured now (a later day uses it).
        model: the day's scoring model version (named in the cost sentence).
        curve: that model's policy curve, or None (then `missing` says why).

    Returns:
        {"rule": sentence, "cost": sentence or None, "change": sentence or None}.
    """
    applied = setting if challenge_age is None else int(challenge_age)
    row = rule_row(curve, "age", applied)
    cost = None
    if row is not None:
        until = curve["young_adult_until"]
        cost = (f"On model {model}'s test split this rule catches "
                f"{_pct(row['minors_flagged'])} of minors and flags "
                f"{_pct(row['young_adults_flagged'])} of {legal_age}-{until - 1} and "
                f"{_pct(row['older_adults_flagged'])} of {until}+ year olds; the model card "
                "gives the same figures for Challenge 20-30 and for P(under "
                f"{legal_age}) thresholds.")
    elif curve is not None:
        cost = f"Model {model}'s policy figures have no row for Challenge {applied}."
    elif missing:
        cost = f"What this rule costs is not known: {missing}."
    change = None
    if applied != setting:
        change = (f"The setting is now Challenge {setting}: days scored from now on are "
                  "flagged with it.")
    return {"rule": f"Policy in force: {describe_age_rule(applied, legal_age)}.", "cost": cost,
            "change": change}
