"""End to end: simulate a small day, score it through `checkout-age score` (spark-submit) with
the trained smoke model, build the reports through `checkout-age reports`, and check that every
count adds up and the compliance flags find the simulated sales to minors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from daily_run import REPORTED_DAY as DAY

from jobs.simulator.frames import frame_faces
from model.config import load_settings

pytestmark = pytest.mark.slow


def _table(root: Path, table: str) -> pd.DataFrame:
    return pd.read_parquet(root / "reports" / table / f"date={DAY}")


def _frames_table(root: Path, table: str) -> pd.DataFrame:
    return pd.read_parquet(root / "reports" / table / f"date={FRAMES_DAY}")


@pytest.fixture(scope="module")
def day(reported_day):
    """Root of a simulated, scored and reported day, plus the job results and the truth."""
    return reported_day


def test_photo_counts_add_up(day):
    root, simulated, scored, _ = day
    injected = simulated.summary["injected"]
    scores, quarantine = _table(root, "photo_scores"), _table(root, "photo_quarantine")
    assert scored["photos_in"] == len(simulated.photos)  # every photo id seen exactly once
    assert scored["photos_scored"] == len(scores)
    assert scored["photos_quarantined"] == len(quarantine)
    assert len(scores) + len(quarantine) == len(simulated.photos)
    assert set(scores.photo_id).isdisjoint(quarantine.photo_id)
    reasons = quarantine.reason.value_counts().to_dict()
    decoder = sum(reasons.get(r, 0) for r in ("not_an_image", "unreadable_image"))
    assert decoder == injected["corrupt_photos"]
    assert reasons.get("no_metadata", 0) == injected["photos_without_metadata"]
    assert reasons.get("missing_file", 0) == injected["metadata_without_file"]
    assert scores.model_version.unique().tolist() == ["v0001"]
    # Crops are scored whole; the estimates follow the true ages (smoke model: seen ~0.6).
    assert scores.faces_found.isna().all() and scores.face_w.isna().all()
    true_age = simulated.photos.set_index("photo_id").loc[scores.photo_id, "customer_age"]
    assert true_age.rank().corr(scores.age_pred_years.rank().set_axis(true_age.index)) >= 0.3


FRAMES_DAY, FRAME_STORES, FRAME_CUSTOMERS, FRAME_SEED = "2026-03-15", 3, 30, 4


@pytest.fixture(scope="module")
def frames_day(faces_dir, trained_registry, tmp_path_factory):
    """A small day of checkout frames (~95) through both jobs, as `reported_day` is for crops."""
    from daily_run import run_cli

    from jobs.simulator.landing import load_test_faces, write_day
    from jobs.simulator.simulate import simulate_day

    root = tmp_path_factory.mktemp("frames")
    faces = load_test_faces(faces_dir, tmp_path_factory.mktemp("face-cache"))
    simulated = simulate_day(faces, FRAMES_DAY, FRAME_STORES, FRAME_CUSTOMERS, FRAME_SEED,
                             frames=True)
    write_day(simulated, str(root))
    scored = run_cli("score", "--date", FRAMES_DAY, "--root", str(root), "--registry",
                     str(trained_registry), "--master", "local[2]")
    reported = run_cli("reports", "--date", FRAMES_DAY, "--root", str(root),
                       "--master", "local[2]")
    return root, simulated, scored, reported


def test_frames_yield_the_customers_face_and_age(frames_day):
    """Frames: counts add up, the customer's face is found where the simulator put it, frames
    without anyone are quarantined `no_face`, and the estimates follow the true ages."""
    root, simulated, scored, _ = frames_day
    assert scored["photos_in"] == len(simulated.photos)
    assert scored["photos_scored"] + scored["photos_quarantined"] == scored["photos_in"]
    photos = simulated.photos.set_index("photo_id")
    faces = photos.frame.map(frame_faces)
    scores = _frames_table(root, "photo_scores").set_index("photo_id")
    quarantine = _frames_table(root, "photo_quarantine")
    readable = photos.index[(photos.corrupt == "") & photos.has_metadata & photos.has_file]
    empty = set(readable[faces[readable].map(len) == 0])
    no_face = set(quarantine.photo_id[quarantine.reason == "no_face"])
    assert empty and empty <= no_face and len(no_face - empty) <= 0.03 * len(readable)
    assert scored["quarantine_reasons"].get("no_face") == len(no_face)
    hits = []
    for photo_id, row in scores.iterrows():
        customer = next(f for f in faces[photo_id] if f["role"] == "customer")
        hits.append(abs(row.face_x + row.face_w / 2 - customer["x"] - customer["w"] / 2)
                    < customer["w"] / 3 and 0.7 < row.face_w / customer["w"] < 1.4)
    assert np.mean(hits) >= 0.95  # the customer, not the person queueing behind
    assert scored["serving"].startswith("artifact")  # the version's artifact, not Keras
    assert scores.faces_found.min() >= 1
    assert scores.face_confidence.min() >= load_settings().yunet_min_confidence
    quality = _frames_table(root, "run_quality").iloc[0]
    assert quality.no_face_rate == pytest.approx(len(no_face) / (len(scores) + len(no_face)))
    assert quality.median_face_px == pytest.approx(scores.face_w.median(), rel=0.05)
    # The smoke model (MAE ~10-13 years on crops) still ranks customers by age on frames: a
    # wrong crop (a shelf, the wrong face) would leave no correlation (seen ~0.6 on crops).
    true_age = photos.loc[scores.index, "customer_age"]
    rank_corr = true_age.rank().corr(scores.age_pred_years.rank())
    print(f"frames: rank correlation {rank_corr:.2f}, customer found {np.mean(hits):.3f}")
    assert rank_corr >= 0.3


def test_receipt_counts_add_up(day):
    root, simulated, _, reported = day
    injected = simulated.summary["injected"]
    quarantine = _table(root, "receipt_quarantine")
    reasons = quarantine.groupby(["source_file", "reason"]).size().to_dict()
    assert reasons.get(("receipts.csv", "bad_timestamp")) == injected["bad_timestamp"]
    assert reasons.get(("receipts.csv", "duplicate_receipt_id")) == injected["duplicate_receipt_id"]
    for reason in ("unknown_product", "non_positive_quantity", "unknown_receipt"):
        assert reasons.get(("receipt_lines.csv", reason)) == injected[reason]
    faulty = simulated.truth_receipts.loc[simulated.truth_receipts.landing_fault != "", "receipt_id"]
    orphaned = simulated.lines.receipt_id.isin(faulty).sum()
    assert reasons.get(("receipt_lines.csv", "receipt_quarantined")) == orphaned

    quality = _table(root, "run_quality").iloc[0]
    ages = _table(root, "receipt_ages")
    assert quality.receipts_in == len(simulated.receipts)
    assert quality.receipts_in == quality.receipts_valid + quality.receipts_quarantined
    assert quality.receipts_valid == len(ages) == ages.receipt_id.nunique()
    assert quality.receipts_valid == quality.receipts_matched + quality.receipts_unmatched
    assert quality.lines_in == len(simulated.lines)
    assert quality.lines_in == quality.lines_valid + quality.lines_quarantined
    assert quality.receipts_quarantined + quality.lines_quarantined == len(quarantine)
    assert quality.photos_in == quality.photos_scored + quality.photos_quarantined
    assert quality.photos_scored == quality.photos_matched + quality.photos_unmatched
    assert reported["receipts_matched"] == quality.receipts_matched


def test_matches_follow_the_true_customer(day):
    root, simulated, _, _ = day
    ages = _table(root, "receipt_ages").merge(
        simulated.truth_receipts[["receipt_id", "photo_id"]].rename(columns={"photo_id": "truth"}),
        on="receipt_id",
    )
    matched = ages[ages.photo_id.notna()]
    assert matched.photo_id.is_unique
    assert matched.time_diff_s.abs().max() <= 10
    # Stray photos can land within a receipt's window, so allow a rare wrong pairing.
    assert (matched.photo_id == matched.truth).mean() >= 0.95
    photographed = (ages.truth != "").sum()
    assert len(matched) >= 0.85 * photographed  # late shots and broken files miss


def test_compliance_flags_find_sales_to_minors(day):
    root, simulated, _, _ = day
    ages = _table(root, "receipt_ages")
    flags = _table(root, "compliance_flags")
    per_cashier = _table(root, "compliance")
    truth = simulated.truth_receipts.set_index("receipt_id")
    assert per_cashier.flagged.sum() == len(flags)
    restricted_truth = truth.loc[ages.receipt_id, "restricted_sold"]
    assert per_cashier.restricted_receipts.sum() == restricted_truth.sum()
    assert (per_cashier.no_photo == per_cashier.restricted_receipts - per_cashier.with_photo).all()
    assert (flags.age_pred_years < 25).all()

    judged = ages[ages.age_pred_years.notna() & restricted_truth.to_numpy()]
    minors = set(judged.receipt_id[truth.loc[judged.receipt_id, "sold_to_minor"].to_numpy()])
    flagged = set(flags.receipt_id)
    assert minors, "the simulated day must contain judged sales to minors"
    recall = len(minors & flagged) / len(minors)
    precision = len(minors & flagged) / max(1, len(flagged))
    chance = len(flagged) / len(judged)
    print(f"compliance flags: recall {recall:.2f}, precision {precision:.2f}, "
          f"flag rate {chance:.2f}, minors {len(minors)}, flags {len(flagged)}")
    # The smoke model (96 px, 1 fine-tuning epoch, MAE ~10-13 years) cannot decide "under 25"
    # per person, but it does rank teenagers younger than adults. Floors: (1) its estimates
    # follow true age: rank correlation >= 0.3 over every judged customer (~200 of them; seen
    # ~0.6), the robust test of signal; (2) a sale to a minor is flagged clearly more often than
    # a random restricted sale: recall >= 1.5x the flag rate and >= 0.2 (seen: recall 0.33 at a
    # flag rate of 0.09 over ~15 minor sales; chance would give ~0.09). Precision stays low by
    # design (Challenge 25 flags every young-looking adult too): reported, not asserted.
    true_age = truth.loc[judged.receipt_id, "customer_age"].to_numpy()
    rank_corr = pd.Series(true_age).rank().corr(pd.Series(judged.age_pred_years.to_numpy()).rank())
    print(f"rank correlation of predicted and true age: {rank_corr:.2f}")
    assert rank_corr >= 0.3
    assert recall >= max(0.2, 1.5 * chance)


def test_reports_hold_no_image_data(day):
    root = day[0]
    for folder in (root / "reports").iterdir():
        frame = pd.read_parquet(folder / f"date={DAY}")
        assert not {"path", "content", "pixels", "face_file"} & set(frame.columns), folder.name
        text = frame.astype(str).to_numpy().ravel()
        assert not any(".jpg" in value or "/landing/" in value for value in text), folder.name


def test_rerun_replaces_partitions(day, spark):
    from jobs.daily import reports

    root = day[0]
    before = {t: _table(root, t) for t in reports.REPORT_TABLES}
    reports.run(spark, root=str(root), run_date=DAY, match_window_s=10, challenge_age=25,
                min_support=0.01, top_n=load_settings().top_n)
    for table, frame in before.items():
        again = _table(root, table)
        key = list(frame.columns)
        pd.testing.assert_frame_equal(
            again.sort_values(key, ignore_index=True), frame.sort_values(key, ignore_index=True)
        )
    leftovers = [p.name for p in (root / "reports").glob("*/_*")]
    assert leftovers == []
