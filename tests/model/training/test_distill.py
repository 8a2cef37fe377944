"""Distillation: blended targets, the guard against teachers that saw the test faces, and the
knobs of a distilled run."""

from __future__ import annotations

import numpy as np
import pytest

from model.config import Settings
from model.errors import UserError
from model.training.distill import blend_targets, check_teacher_unseen
from model.training.profiles import estimate_minutes, train_config

WHOLE_SET = {"train": 16922, "valid": 2063, "test": 2108}


def test_targets_move_from_the_label_to_the_teachers_mean_with_the_weight() -> None:
    ages = np.array([20.0, 40.0, 70.0])
    estimates = np.array([[24.0, 38.0, 60.0], [26.0, 42.0, 64.0]])  # mean 25, 40, 62
    assert blend_targets(ages, estimates, 0.0).tolist() == [20.0, 40.0, 70.0]
    assert blend_targets(ages, estimates, 1.0).tolist() == [25.0, 40.0, 62.0]
    blended = blend_targets(ages, estimates, 0.5)
    assert blended.dtype == np.float32 and blended.tolist() == [22.5, 40.0, 66.0]


@pytest.mark.parametrize("weight", [-0.1, 1.5])
def test_a_weight_outside_zero_to_one_is_refused(weight: float) -> None:
    with pytest.raises(UserError, match="within 0..1"):
        blend_targets(np.ones(2), np.ones((1, 2)), weight)
    with pytest.raises(UserError, match="within 0..1"):
        train_config(Settings(), "cpu", teachers=["v0002"], distill_weight=weight)


def test_estimates_of_other_faces_are_refused() -> None:
    with pytest.raises(UserError, match="do not match 3 training faces"):
        blend_targets(np.ones(3), np.ones((2, 4)), 0.5)


def test_a_teacher_that_saw_a_test_face_is_refused() -> None:
    check_teacher_unseen("v0002", {"a", "b"}, {"c", "d"})  # disjoint: accepted
    with pytest.raises(UserError, match="teacher v0007 learnt from 1 of the 2 test faces"):
        check_teacher_unseen("v0007", {"a", "c"}, {"c", "d"})
    with pytest.raises(UserError, match="no training_images.txt"):
        check_teacher_unseen("v0001", set(), {"c"})


def test_teachers_are_a_tuple_and_their_estimates_count_in_the_time_estimate() -> None:
    alone = train_config(Settings(), "cpu")
    distilled = train_config(Settings(), "cpu", teachers=["v0002", "v0005"])
    assert alone.teachers == () and distilled.teachers == ("v0002", "v0005")
    extra = estimate_minutes(distilled, WHOLE_SET) - estimate_minutes(alone, WHOLE_SET)
    one_teacher = estimate_minutes(train_config(Settings(), "cpu", teachers=["v0002"]),
                                   WHOLE_SET) - estimate_minutes(alone, WHOLE_SET)
    assert extra > 0 and extra == pytest.approx(2 * one_teacher)
