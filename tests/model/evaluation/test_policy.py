"""Policy curve: minors caught vs adults flagged, worked out by hand (model/evaluation/policy.py)."""

from __future__ import annotations

import numpy as np
import pytest

from model.evaluation.policy import describe_age_rule, policy_curve, rule_row

# Two minors, two young adults (18-24), two older adults (25+).
TRUE = np.array([15, 17, 19, 24, 30, 50.0])
PRED = np.array([19, 26, 21, 25, 24, 40.0])
P = np.array([0.6, 0.1, 0.35, 0.05, 0.2, 0.01])


def test_age_rules_worked_by_hand():
    curve = policy_curve(TRUE, PRED, legal_age=18, ages=[20, 21, 25, 26, 27])
    assert (curve["n_minors"], curve["n_young_adults"], curve["n_older_adults"]) == (2, 2, 2)
    rows = {row["threshold"]: row for row in curve["age_rules"]}
    # "estimated < 20": only the 15-year-old (19).
    assert rows[20] == {"threshold": 20, "minors_flagged": 0.5, "young_adults_flagged": 0.0,
                        "older_adults_flagged": 0.0, "all_flagged": 1 / 6}
    # < 25: 19 (minor), 21 (19 y.o.), 24 (30 y.o.); 25 itself is not below 25.
    assert rows[25] == {"threshold": 25, "minors_flagged": 0.5, "young_adults_flagged": 0.5,
                        "older_adults_flagged": 0.5, "all_flagged": 0.5}
    # < 26: adds the 24-year-old estimated 25; the 17-year-old estimated 26 still passes.
    assert rows[26]["young_adults_flagged"] == 1.0 and rows[26]["minors_flagged"] == 0.5
    assert rows[27]["minors_flagged"] == 1.0
    assert curve["probability_rules"] is None


def test_probability_rules_inclusive_threshold():
    curve = policy_curve(TRUE, PRED, P, legal_age=18, probabilities=[0.05, 0.2, 0.5])
    rows = {row["threshold"]: row for row in curve["probability_rules"]}
    # p >= 0.2: 0.6 (minor), 0.35 (19 y.o.), 0.2 (30 y.o.).
    assert rows[0.2] == {"threshold": 0.2, "minors_flagged": 0.5, "young_adults_flagged": 0.5,
                         "older_adults_flagged": 0.5, "all_flagged": 0.5}
    assert rows[0.05]["minors_flagged"] == 1.0 and rows[0.05]["young_adults_flagged"] == 1.0
    assert rows[0.5]["older_adults_flagged"] == 0.0 and rows[0.5]["minors_flagged"] == 0.5
    assert rule_row(curve, "probability", 0.2) == rows[0.2]
    assert rule_row(curve, "age", 25) is not None and rule_row(curve, "age", 99) is None
    assert rule_row(None, "age", 25) is None


def test_missing_estimates_never_flag_and_empty_groups_are_none():
    curve = policy_curve(np.array([30.0, 40.0]), np.array([np.nan, 20.0]),
                         np.array([np.nan, 0.9]), legal_age=18, ages=[25], probabilities=[0.5])
    assert curve["age_rules"][0] == {"threshold": 25, "minors_flagged": None,
                                     "young_adults_flagged": None,
                                     "older_adults_flagged": 0.5, "all_flagged": 0.5}
    assert curve["probability_rules"][0]["older_adults_flagged"] == 0.5


def test_more_lenient_age_rule_never_catches_fewer_minors():
    rng = np.random.default_rng(0)
    true = rng.integers(10, 70, 500).astype(float)
    curve = policy_curve(true, true + rng.normal(0, 5, true.size), legal_age=18)
    caught = [row["minors_flagged"] for row in curve["age_rules"]]
    assert [row["threshold"] for row in curve["age_rules"]] == list(range(20, 31))
    assert caught == sorted(caught) and caught[-1] > caught[0]


def test_mismatched_lengths_refused():
    with pytest.raises(ValueError, match="y_pred has 1"):
        policy_curve(TRUE, PRED[:1], legal_age=18)
    with pytest.raises(ValueError, match="p_under has 2"):
        policy_curve(TRUE, PRED, P[:2], legal_age=18)


def test_rule_named_in_words():
    assert describe_age_rule(21, 18).startswith("Challenge 21: an age-restricted sale is flagged "
                                                "when the customer's estimated age is below 21")


def test_model_card_states_the_trade_off_and_the_rule_in_force():
    from model.lifecycle.card import model_card

    curve = policy_curve(TRUE, PRED, P, legal_age=18, ages=[21, 25], probabilities=[0.2])
    card = model_card({}, {"test": {"challenge_age": 21, "policy_curve": curve}}, {})
    assert "## Flagging policy: minors caught vs adults flagged (test split)" in card
    assert "| estimated age < 21 (*in force*) | 50.0 % | 0.0 % | 0.0 % | 16.7 % |" in card
    assert "| estimated age < 25 | 50.0 % | 50.0 % | 50.0 % | 50.0 % |" in card
    assert "| P(under 18) >= 0.2 | 50.0 % | 50.0 % | 50.0 % | 50.0 % |" in card
    no_p = model_card({}, {"test": {"policy_curve": policy_curve(TRUE, PRED, legal_age=18)}}, {})
    assert "No probability rules: this version has no calibration." in no_p
    assert "Flagging policy" not in model_card({}, {"test": {}}, {})
