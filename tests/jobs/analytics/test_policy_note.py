"""The report's statement of the policy in force (jobs/analytics/policy_note.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jobs.analytics.policy_note import model_policy_curve, policy_statement
from model.evaluation.policy import policy_curve
from model.lifecycle.registry import ModelRegistry

# Two minors, two 18-24, two 25+; estimated ages worked out in tests/model/evaluation/test_policy.py.
CURVE = policy_curve(np.array([15, 17, 19, 24, 30, 50.0]), np.array([19, 26, 21, 25, 24, 40.0]),
                     legal_age=18, ages=[21, 25])


def test_statement_names_the_rule_and_its_cost():
    said = policy_statement(25, legal_age=18, setting=25, model="v0003", curve=CURVE)
    assert said["rule"] == ("Policy in force: Challenge 25: an age-restricted sale is flagged when "
                            "the customer's estimated age is below 25 (legal age 18).")
    assert said["cost"].startswith("On model v0003's test split this rule catches 50.0 % of "
                                   "minors and flags 50.0 % of 18-24 and 50.0 % of 25+ year olds")
    assert said["change"] is None


def test_the_days_rule_wins_over_a_changed_setting():
    said = policy_statement(21, legal_age=18, setting=25, model="v0003", curve=CURVE)
    assert "Challenge 21" in said["rule"]
    assert "catches 50.0 % of minors and flags 0.0 % of 18-24 and 0.0 % of 25+" in said["cost"]
    assert said["change"].startswith("The setting is now Challenge 25")


def test_unknown_cost_is_said_with_its_reason():
    said = policy_statement(25, legal_age=18, setting=25, model="v0001", curve=None,
                            missing="model v0001 is not in the registry")
    assert said["cost"] == ("What this rule costs is not known: model v0001 is not in the "
                            "registry.")
    no_row = policy_statement(30, legal_age=18, setting=30, model="v0003", curve=CURVE)
    assert no_row["cost"] == "Model v0003's policy figures have no row for Challenge 30."


def test_curve_read_from_the_registered_version(tmp_path: Path):
    store = str(tmp_path / "registry")
    registry = ModelRegistry(store, cache_dir=tmp_path / "cache")
    model_file = tmp_path / "model.keras"
    model_file.write_bytes(b"not read here")
    version = registry.register(model_file, {"test": {"mae": 5.0, "policy_curve": CURVE}}, {},
                                "fp", "# card", [])
    old = registry.register(model_file, {"test": {"mae": 5.0}}, {}, "fp", "# card", [])
    assert model_policy_curve(store, version) == (CURVE, None)
    curve, why = model_policy_curve(store, old)
    assert curve is None and why == f"model {old} was trained before policy figures were recorded"
    curve, why = model_policy_curve(store, "v0042")
    assert curve is None and why.startswith("model v0042 is not in the registry")
    assert model_policy_curve(store, None) == (
        None, "the day's scoring model is not recorded")
