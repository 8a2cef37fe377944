"""The simulated checkout day: deterministic, realistic enough to carry signal, faults included."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from jobs.simulator.catalogue import RESTRICTED_CATEGORIES, build_catalogue
from jobs.simulator.landing import load_test_faces, write_day
from jobs.simulator.simulate import simulate_day

DAY = "2026-03-14"


@pytest.fixture(scope="module")
def test_faces(faces_dir, tmp_path_factory):
    return load_test_faces(faces_dir, tmp_path_factory.mktemp("face-cache"))


@pytest.fixture(scope="module")
def big_day(test_faces):
    return simulate_day(test_faces, DAY, stores=10, receipts_per_store=200, seed=5)


def test_catalogue_shape():
    catalogue = build_catalogue()
    assert len(catalogue) >= 200 and catalogue.product_id.is_unique
    assert catalogue.category.nunique() >= 15
    restricted = set(catalogue.loc[catalogue.age_restricted, "category"])
    assert restricted == set(RESTRICTED_CATEGORIES) == {"beer", "wine", "spirits", "tobacco"}


def test_same_seed_same_day_other_date_other_day(test_faces):
    a = simulate_day(test_faces, DAY, 2, 30, seed=1)
    b = simulate_day(test_faces, DAY, 2, 30, seed=1)
    c = simulate_day(test_faces, "2026-03-15", 2, 30, seed=1)
    for name in ("receipts", "lines", "photos", "truth_receipts"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    assert not a.photos.photo_id.isin(c.photos.photo_id).any()


def test_faces_come_from_the_test_split_only(test_faces, big_day):
    assert set(big_day.photos.face_file) <= set(test_faces.file_name)
    assert set(big_day.truth_receipts.face_file) <= set(test_faces.file_name)


def test_baskets_depend_on_age(big_day):
    lines = big_day.lines.merge(big_day.truth_receipts[["receipt_id", "customer_age"]],
                                on="receipt_id")
    lines = lines.merge(build_catalogue()[["product_id", "category"]], on="product_id")
    buyer_age = lines.groupby("category")["customer_age"].mean()
    assert buyer_age["energy_drinks"] + 10 < buyer_age["pharmacy"]
    assert buyer_age["snacks"] < buyer_age["dairy"]


def test_minors_buy_restricted_goods_mostly_from_lax_cashiers(big_day):
    truth = big_day.truth_receipts
    sold = truth[truth.sold_to_minor]
    assert len(sold) >= 10
    assert (sold.customer_age < 18).all() and sold.restricted_sold.all()
    assert sold.lax_cashier.mean() > 0.5 > truth.lax_cashier.mean()


def test_camera_clocks_are_skewed_per_lane_and_mostly_within_the_window(big_day):
    photos = big_day.photos[big_day.photos.receipt_id != ""]
    receipts = big_day.receipts.drop_duplicates("receipt_id")
    pairs = photos.merge(receipts[["receipt_id", "closed_at"]], on="receipt_id")
    pairs = pairs[~pairs.closed_at.str.contains(" ")]  # the injected bad timestamp
    diff = (pd.to_datetime(pairs.captured_at) - pd.to_datetime(pairs.closed_at)).dt.total_seconds()
    per_lane = diff.groupby([pairs.store_id, pairs.lane_id]).median()
    assert per_lane.std() > 1.0  # lanes disagree with the till by different amounts
    assert (diff.abs() <= 10).mean() > 0.95 and (diff.abs() > 10).any()  # late shots


def test_day_has_the_expected_faults(big_day):
    truth, photos = big_day.truth_receipts, big_day.photos
    assert (truth.photo_id == "").mean() > 0.03  # customers the camera missed
    assert (photos.receipt_id == "").sum() > 20  # passers-by and refused customers
    assert big_day.summary["injected"]["corrupt_photos"] >= 3
    assert all(count >= 1 for count in big_day.summary["injected"].values())


def test_written_day_is_complete_and_marked_last(test_faces, tmp_path):
    day = simulate_day(test_faces, DAY, 2, 30, seed=2)
    landing = write_day(day, str(tmp_path))
    marker = json.loads((landing / "_COMPLETE").read_text())
    files = list((landing / "photos").rglob("*.jpg"))
    assert marker["photo_files"] == len(files) == day.photos.has_file.sum()
    assert marker["receipts"] == len(pd.read_csv(landing / "receipts.csv"))
    assert marker["receipt_lines"] == len(pd.read_csv(landing / "receipt_lines.csv"))
    assert marker["photos"] == len(pd.read_csv(landing / "photos.csv")) == day.photos.has_metadata.sum()
    newest = max(p.stat().st_mtime_ns for p in landing.rglob("*") if p.name != "_COMPLETE")
    assert (landing / "_COMPLETE").stat().st_mtime_ns >= newest
    truth = pd.read_csv(tmp_path / "ground_truth" / f"date={DAY}" / "receipts.csv")
    assert len(truth) == day.truth_receipts.shape[0]
