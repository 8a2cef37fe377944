"""Distillation: train one model towards what several registered versions estimate together.

Averaging the estimates of several versions beats each of them (bench/results/ensembles.json:
test MAE 4.41 for four against 4.59 alone) but costs one model run per member at serving time.
A student trained on `(1 - weight) * label + weight * mean teacher estimate` for each training
face learns from labels softened by the ensemble (a face that looks older than its recorded age
pulls less hard) and serves at the cost of one model.

The teachers' estimates are of the training split only (flip TTA, as served). A teacher that
learnt from any face of the student's test split would leak those labels into the figures the
student is judged by, so such a teacher is refused (`check_teacher_unseen`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.errors import UserError


@dataclass(frozen=True)
class TeacherRecord:
    """What the version's config.json keeps about one teacher."""

    version: str
    run_id: str | None
    train_mae: float  # its MAE on the student's training faces (it learnt most of them)


def blend_targets(ages: np.ndarray, teacher_estimates: np.ndarray, weight: float) -> np.ndarray:
    """Training targets: `(1 - weight) * ages + weight * mean over teachers` (float32).

    Args:
        ages: N recorded ages.
        teacher_estimates: (T, N) estimates, one row per teacher.
        weight: share of the teachers' mean in the target, 0..1.

    Raises:
        UserError: `weight` outside 0..1, or estimates of another shape.
    """
    if not 0.0 <= weight <= 1.0:
        raise UserError(f"distillation weight must be within 0..1, not {weight}")
    ages = np.asarray(ages, dtype=np.float64).reshape(-1)
    estimates = np.asarray(teacher_estimates, dtype=np.float64)
    if estimates.ndim != 2 or estimates.shape[1] != len(ages) or len(estimates) == 0:
        raise UserError(f"teacher estimates of shape {estimates.shape} do not match "
                        f"{len(ages)} training faces")
    return ((1.0 - weight) * ages + weight * estimates.mean(axis=0)).astype(np.float32)


def check_teacher_unseen(teacher: str, teacher_seen: set[str], held_out: set[str]) -> None:
    """Refuse a teacher that learnt from any of the student's held-out (test) faces.

    Args:
        teacher: the teacher's version id (for the message).
        teacher_seen: content hashes of the faces it learnt from (`training_images.txt`).
        held_out: content hashes of the student's test faces.

    Raises:
        UserError: the teacher has no list of its faces, or the lists overlap.
    """
    if not teacher_seen:
        raise UserError(f"teacher {teacher} has no training_images.txt, so whether it saw the "
                        "test faces cannot be checked: use a version trained by this project")
    overlap = len(teacher_seen & held_out)
    if overlap:
        raise UserError(f"teacher {teacher} learnt from {overlap} of the {len(held_out)} test "
                        "faces: its estimates would leak their labels into training; use a "
                        "teacher trained on this face set's own split")


def teacher_targets(registry: object, teachers: tuple[str, ...], weight: float,
                    rows: object, images: np.ndarray, size: int, cache_dir: object,
                    fingerprint: str, batch_size: int) -> tuple[np.ndarray, list[TeacherRecord]]:
    """Blended targets of the training rows, and what to record about each teacher.

    Args:
        registry: the `ModelRegistry` the teachers are versions (or aliases) of.
        teachers: version ids or aliases.
        weight: share of the teachers' mean estimate in a target (`blend_targets`).
        rows: the run's rows (`split`, `sha256`, `real_age`), in the order of `images`.
        images: the rows' decoded images at the student's `size`.
        size: the student's input side; a teacher of another size gets its own images
            (`load_images` with `cache_dir` and the face set's `fingerprint`).
        batch_size: images per forward pass.

    Raises:
        UserError: a teacher that cannot be resolved or saw the test faces (`check_teacher_unseen`).
    """
    from model.data.image_cache import load_images
    from model.evaluation.evaluate import training_hashes
    from model.serving.net import load_age_model
    from model.serving.predict import predict_ages

    train = (rows["split"] == "train").to_numpy()
    held_out = set(rows.loc[rows["split"] == "test", "sha256"])
    ages = rows.loc[train, "real_age"].to_numpy(dtype=np.float32)
    estimates, records = [], []
    for name in teachers:
        version = registry.resolve(name)
        check_teacher_unseen(version.version, training_hashes(version), held_out)
        own = images if version.image_size == size else load_images(
            rows, version.image_size, cache_dir, fingerprint)
        estimate = predict_ages(load_age_model(version.model_path),
                                np.asarray(own[train]), batch_size=batch_size)
        estimates.append(estimate)
        records.append(TeacherRecord(version.version, version.run_id,
                                     round(float(np.abs(estimate - ages).mean()), 3)))
    return blend_targets(ages, np.stack(estimates), weight), records
