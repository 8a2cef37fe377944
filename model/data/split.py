"""Deterministic train/valid/test split from image content.

Each image's split follows from its own content hash alone: byte-identical copies always
land together, and adding or removing rows never moves an existing image. Because the
hash is independent of age, every age band gets the target shares in expectation
(roughly stratified: a band of n images deviates by about sqrt(share * (1 - share) / n)).
"""

from __future__ import annotations

import pandas as pd

SPLITS = ("train", "valid", "test")
_HASH_DIGITS = 15  # 60 bits: plenty of resolution, fits an int64


def hash_position(sha256: pd.Series) -> pd.Series:
    """Map hex content hashes to a uniform position in [0, 1)."""
    head = sha256.str.slice(0, _HASH_DIGITS).map(lambda text: int(text, 16))
    return head.astype("float64") / float(16**_HASH_DIGITS)


def assign_splits(
    usable: pd.DataFrame, *, valid_share: float = 0.1, test_share: float = 0.1
) -> pd.DataFrame:
    """Copy of `usable` with a `split` column in {"train", "valid", "test"}.

    Args:
        usable: rows with a `sha256` column (hex digest of the image bytes).
        valid_share: target share of the validation split.
        test_share: target share of the test split.

    Returns:
        The same rows, same order, plus `split`.
    """
    if valid_share < 0 or test_share < 0 or valid_share + test_share >= 1:
        raise ValueError(
            f"split shares must be >= 0 and leave room for training: valid {valid_share}, "
            f"test {test_share}"
        )
    position = hash_position(usable["sha256"])
    split = pd.Series("train", index=usable.index)
    split[position < test_share + valid_share] = "valid"
    split[position < test_share] = "test"
    return usable.assign(split=split)
