"""model/data/split.py: splits follow content hashes, keep copies together, stay put, spread evenly."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from model.config import EVAL_BANDS, band_of
from model.data.split import assign_splits


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _synthetic(n: int, seed: int = 0) -> pd.DataFrame:
    """n rows with random content hashes and ages spread over every evaluation band."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "file_name": [f"{i:06d}.jpg" for i in range(n)],
            "real_age": rng.integers(1, 100, n).astype(float),
            "sha256": [_sha(f"{seed}-{i}") for i in range(n)],
        }
    )


def test_split_follows_hash_position_by_hand():
    # Position = first hex digits as a fraction: 0x0... -> 0.0, 0x1... -> 1/16 = 0.0625,
    # 0x2... -> 0.125, 0x3... -> 0.1875, 0x4... -> 0.25, 0xf... -> 0.9375.
    usable = pd.DataFrame({"sha256": [d + "0" * 63 for d in "01234f"]})
    split = assign_splits(usable, valid_share=0.1, test_share=0.1)["split"]
    assert list(split) == ["test", "test", "valid", "valid", "train", "train"]


def test_order_and_columns_are_kept():
    usable = _synthetic(50)
    out = assign_splits(usable)
    assert list(out.columns) == [*usable.columns, "split"]
    pd.testing.assert_frame_equal(out.drop(columns="split"), usable)
    assert "split" not in usable.columns  # input untouched


def test_copies_of_one_image_land_together():
    usable = _synthetic(400)
    copies = usable.assign(file_name=lambda d: "copy_" + d["file_name"])
    out = assign_splits(pd.concat([usable, copies], ignore_index=True))
    assert (out["split"].iloc[:400].to_numpy() == out["split"].iloc[400:].to_numpy()).all()


def test_adding_rows_never_moves_existing_images():
    before = assign_splits(_synthetic(1000, seed=1))
    grown = pd.concat([_synthetic(500, seed=2), _synthetic(1000, seed=1)], ignore_index=True)
    after = assign_splits(grown).iloc[500:].reset_index(drop=True)
    assert (after["split"] == before["split"]).all()


def test_every_band_gets_the_target_shares():
    out = assign_splits(_synthetic(40_000), valid_share=0.1, test_share=0.15)
    out["band"] = out["real_age"].map(band_of)
    shares = pd.crosstab(out["band"], out["split"], normalize="index")
    assert set(shares.index) == {name for name, _, _ in EVAL_BANDS}
    # Smallest band ~2,000 rows: one standard deviation of a share is ~0.008.
    assert shares["test"].between(0.12, 0.18).all(), shares
    assert shares["valid"].between(0.07, 0.13).all(), shares


def test_real_set_bands_get_the_target_test_share(faces_dir):
    """Content hashes of the whole real set spread evenly over age bands."""
    labels = pd.read_csv(faces_dir / "labels.csv")
    labels["sha256"] = [
        hashlib.sha256((faces_dir / "final_files" / name).read_bytes()).hexdigest()
        for name in labels["file_name"]
    ]
    out = assign_splits(labels)
    out["band"] = out["real_age"].map(band_of)
    shares = out.groupby("band")["split"].apply(lambda s: (s == "test").mean())
    counts = out["band"].value_counts()
    # A band of n photos deviates by about sqrt(0.09 / n) (0.008 to 0.02 here); allow three.
    tolerance = 3 * np.sqrt(0.09 / counts[shares.index])
    assert ((shares - 0.1).abs() <= tolerance).all(), shares


@pytest.mark.parametrize(("valid", "test"), [(-0.1, 0.1), (0.5, 0.5), (0.2, 0.9)])
def test_impossible_shares_are_refused(valid, test):
    with pytest.raises(ValueError, match="split shares"):
        assign_splits(_synthetic(10), valid_share=valid, test_share=test)
