"""One realistic checkout day, generated from a seed (the landing data the daily jobs read).

Customers get true ages and faces from the face set's test split; baskets depend on age; some
minors try to buy alcohol or tobacco and a few lax cashiers sell to them; the camera clock of each
lane is a few seconds off the till's; cameras miss customers, photograph people who buy nothing and
write a few broken files; the till export has a few bad rows. Pure generation here
(`simulate_day`), files in `jobs.simulator.landing`. Same seed and date, same day, byte for byte.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from jobs.simulator.catalogue import CATEGORIES, build_catalogue, category_propensity
from jobs.simulator.frames import plan_frames

OPEN_S, CLOSE_S = 5 * 3600, 20 * 3600  # store hours in UTC (08:00-23:00 Moscow)
SHIFT_CHANGE_S = 12 * 3600 + 1800
MIN_GAP_S = 40.0  # a checkout takes at least this long on one lane
LAX_SHARE = 0.12  # share of cashiers who never ask for ID
WINDOW_FACE_BEFORE_CLOSE_S = (1.0, 5.0)  # photo taken while paying
CAMERA_OFFSET_S = 3.0  # camera clock = till clock + U(-3, 3) s, per lane
PHOTO_RATE, LATE_PHOTO_RATE, STRAY_RATE = 0.92, 0.02, 0.04
# Shopper age mix (share per age range) the customer faces are drawn to follow.
SHOPPER_AGES = ((14, 18, 0.08), (18, 25, 0.13), (25, 35, 0.2), (35, 45, 0.2),
                (45, 55, 0.16), (55, 65, 0.13), (65, 86, 0.10))
_BASKET_AGES, _BASKET_MEAN = (15, 21, 30, 40, 50, 60, 75), (1.5, 2.5, 4.5, 5.5, 5.0, 4.5, 3.5)


@dataclass
class SimulatedDay:
    """Everything one simulated day consists of (landing rows as strings, truth as values)."""

    run_date: str
    products: pd.DataFrame  # products.csv columns
    receipts: pd.DataFrame  # receipts.csv columns (strings; includes injected bad rows)
    lines: pd.DataFrame  # receipt_lines.csv columns (strings; includes injected bad rows)
    photos: pd.DataFrame  # photo_id, store_id, lane_id, captured_at, face_path, corrupt, has_metadata, has_file
    truth_receipts: pd.DataFrame
    summary: dict = field(default_factory=dict)


def shopper_faces(test_faces: pd.DataFrame, count: int, rng: np.random.Generator) -> pd.DataFrame:
    """`count` faces drawn so their ages follow `SHOPPER_AGES` (without replacement while possible)."""
    ages = test_faces["real_age"].to_numpy(float)
    weights = np.zeros(len(ages))
    for low, high, share in SHOPPER_AGES:
        inside = (ages >= low) & (ages < high)
        if inside.any():
            weights[inside] = share / inside.sum()
    weights /= weights.sum()
    replace = count > int((weights > 0).sum())
    picked = rng.choice(len(ages), size=count, replace=replace, p=weights)
    return test_faces.iloc[picked].reset_index(drop=True)


def _timestamp(day_start: dt.datetime, seconds: np.ndarray) -> list[str]:
    stamps = pd.to_datetime(day_start) + pd.to_timedelta(np.round(seconds, 3), unit="s")
    return [s.strftime("%Y-%m-%dT%H:%M:%S.") + f"{s.microsecond // 1000:03d}Z" for s in stamps]


def _stores(n_stores: int, rng: np.random.Generator) -> pd.DataFrame:
    """One row per (store, lane, shift) with its cashier, lax flag and camera clock offset."""
    rows = []
    for s in range(1, n_stores + 1):
        store = f"S{s:03d}"
        for lane in range(1, int(rng.integers(2, 5)) + 1):
            offset = float(rng.uniform(-CAMERA_OFFSET_S, CAMERA_OFFSET_S))
            for shift in (0, 1):
                rows.append({"store_id": store, "lane_id": lane, "shift": shift,
                             "cashier_id": f"{store}-C{2 * lane - 1 + shift:02d}",
                             "lax": bool(rng.random() < LAX_SHARE), "camera_offset_s": offset})
    staff = pd.DataFrame(rows)
    if not staff["lax"].any():  # every simulated day has at least one lax cashier
        staff.loc[int(rng.integers(len(staff))), "lax"] = True
    return staff


def _close_times(staff: pd.DataFrame, store: str, count: int, minors_lax: np.ndarray,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Lane and till time of each of a store's receipts (lax-seeking minors go to a lax cashier)."""
    shifts = staff[staff.store_id == store]
    lanes = shifts["lane_id"].unique()
    busy = rng.random(count) < 0.5  # half the traffic in lunch and evening peaks
    peaks = np.where(rng.random(count) < 0.4, 10 * 3600, 16 * 3600)  # 13:00 and 19:00 Moscow
    seconds = np.where(busy, peaks + rng.normal(0, 3600, count), rng.uniform(OPEN_S, CLOSE_S, count))
    seconds = np.clip(seconds, OPEN_S, CLOSE_S - 600)
    lane = rng.choice(lanes, size=count)
    lax = shifts[shifts["lax"]]
    for i in np.flatnonzero(minors_lax & (len(lax) > 0)):
        pick = lax.iloc[int(rng.integers(len(lax)))]
        lane[i] = pick["lane_id"]
        low, high = (OPEN_S, SHIFT_CHANGE_S) if pick["shift"] == 0 else (SHIFT_CHANGE_S, CLOSE_S - 600)
        seconds[i] = rng.uniform(low, high)
    for lane_id in lanes:  # one customer at a time per lane
        idx = np.flatnonzero(lane == lane_id)
        idx = idx[np.argsort(seconds[idx], kind="stable")]
        for prev, cur in zip(idx[:-1], idx[1:], strict=True):
            seconds[cur] = max(seconds[cur], seconds[prev] + MIN_GAP_S + rng.uniform(0, 20))
    return lane, seconds


def _baskets(ages: np.ndarray, wants: np.ndarray, catalogue: pd.DataFrame,
             rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Regular and restricted basket items per customer: (customer, product_id, quantity)."""
    restricted = np.array([c.restricted for c in CATEGORIES])
    prop = np.stack([category_propensity(a) for a in range(101)])
    regular = np.where(restricted, 0.0, prop)
    regular /= regular.sum(1, keepdims=True)
    alcohol = np.where(restricted, prop, 0.0)
    alcohol /= alcohol.sum(1, keepdims=True)
    mean = np.interp(ages, _BASKET_AGES, _BASKET_MEAN)
    n_regular = rng.poisson(mean)
    n_regular = np.where(wants, n_regular, np.maximum(n_regular, 1))
    n_restricted = np.where(wants, rng.integers(1, 3, len(ages)), 0)
    parts = []
    for counts, table, kind in ((n_regular, regular, False), (n_restricted, alcohol, True)):
        who = np.repeat(np.arange(len(ages)), counts)
        age_idx = np.clip(np.round(ages[who]), 0, 100).astype(int)
        cum = np.cumsum(table[age_idx], axis=1)
        cat = np.minimum((cum < rng.random((len(who), 1)) * cum[:, -1:]).sum(1), len(CATEGORIES) - 1)
        parts.append(pd.DataFrame({"customer": who, "category": [CATEGORIES[c].name for c in cat],
                                   "age": ages[who], "restricted": kind}))
    items = pd.concat(parts, ignore_index=True)
    # Product within category: popularity, leaning young or old by the product's tilt.
    young = np.clip((40.0 - items["age"].to_numpy()) / 25.0, -1, 1)
    picked = np.empty(len(items), dtype=object)
    by_cat = {name: grp for name, grp in catalogue.groupby("category")}
    for name, idx in items.groupby("category").indices.items():
        grp = by_cat[name]
        w = grp["popularity"].to_numpy()[None, :] * np.exp(1.2 * np.outer(young[idx], grp["tilt"]))
        cum = np.cumsum(w, axis=1)
        choice = (cum < rng.random((len(idx), 1)) * cum[:, -1:]).sum(1)
        picked[idx] = grp["product_id"].to_numpy()[np.minimum(choice, len(grp) - 1)]
    items["product_id"] = picked
    items["quantity"] = rng.choice([1, 2, 3], size=len(items), p=[0.75, 0.18, 0.07])
    merged = items.groupby(["customer", "product_id", "restricted"], as_index=False)["quantity"].sum()
    return merged[~merged.restricted], merged[merged.restricted]


def _photo_ids(count: int, rng: np.random.Generator) -> list[str]:
    raw = rng.integers(0, 2**63 - 1, size=count, dtype=np.int64)
    return [f"ph{value:016x}" for value in raw]


def _pick(rng: np.random.Generator, pool: np.ndarray, rate: float, minimum: int = 1) -> np.ndarray:
    """A few indices of `pool` (at least `minimum` when the pool is not tiny)."""
    count = max(minimum if len(pool) >= 20 else 0, int(round(rate * len(pool))))
    return rng.choice(pool, size=min(count, len(pool)), replace=False) if count else pool[:0]


def simulate_day(test_faces: pd.DataFrame, run_date: str, stores: int, receipts_per_store: int,
                 seed: int, frames: bool = False) -> SimulatedDay:
    """Generate one day of the simulated chain.

    Args:
        test_faces: the face set's test split (`real_age`, `gender`, `path`, `file_name`).
        run_date: YYYY-MM-DD.
        stores: number of stores.
        receipts_per_store: customers per store (a customer refused everything leaves no receipt).
        seed: with the date, fixes everything.
        frames: photos are checkout-camera frames (`jobs.simulator.frames`: the customer's face
            in a 1280x720 scene, sometimes a second face, sometimes none) instead of face crops.
            Everything else is the same day as without.
    """
    rng = np.random.default_rng([seed, int(run_date.replace("-", ""))])
    day_start = dt.datetime.fromisoformat(run_date).replace(tzinfo=None)
    catalogue = build_catalogue()
    staff = _stores(stores, rng)
    cust = _customers(test_faces, staff, stores, receipts_per_store, rng)
    n = len(cust)
    regular, restricted = _baskets(cust["age"].to_numpy(), cust["attempted_restricted"].to_numpy(),
                                   catalogue, rng)
    restricted = restricted[~cust["refused"].to_numpy()[restricted["customer"].to_numpy()]]
    items = pd.concat([regular, restricted]).sort_values(["customer", "product_id"], kind="stable")
    has_receipt = np.zeros(n, dtype=bool)
    has_receipt[items["customer"].unique()] = True
    cust["receipt_id"] = _receipt_ids(cust, has_receipt, run_date)
    cust["restricted_sold"] = np.isin(np.arange(n), restricted["customer"].unique())
    photos = _photos(cust, staff, test_faces, day_start, rng)

    sold = cust[has_receipt].copy()
    lines = items.merge(catalogue[["product_id", "list_price_rub"]], on="product_id")
    lines["receipt_id"] = cust["receipt_id"].to_numpy()[lines["customer"].to_numpy()]
    lines["revenue"] = lines["quantity"] * lines["list_price_rub"]
    totals = lines.groupby("receipt_id")["revenue"].sum()
    sold["total_rub"] = sold["receipt_id"].map(totals).round(2)
    sold["closed_at"] = _timestamp(day_start, sold["close_s"].to_numpy())
    sold = sold.sort_values("receipt_id", ignore_index=True)
    day = _with_landing_faults(run_date, catalogue, sold, lines, photos, rng,
                               summary={"seed": seed, "stores": stores,
                                        "receipts_per_store": receipts_per_store,
                                        "customers": n, "lax_cashiers":
                                        sorted(staff.loc[staff.lax, "cashier_id"].tolist())})
    if frames:  # its own random stream: the rest of the day is the crops day, byte for byte
        frame_rng = np.random.default_rng([seed, int(run_date.replace("-", "")), 1])
        queue = shopper_faces(test_faces, len(day.photos), frame_rng)
        day.photos = plan_frames(day.photos, queue, frame_rng)
        day.summary["photo_format"] = "frames"
    return day


def _customers(test_faces: pd.DataFrame, staff: pd.DataFrame, stores: int,
               receipts_per_store: int, rng: np.random.Generator) -> pd.DataFrame:
    """One row per customer: store, face, age, lane, till time, cashier, what they try to buy."""
    n = stores * receipts_per_store
    faces = shopper_faces(test_faces, n, rng)
    cust = pd.DataFrame({"store_id": np.repeat([f"S{s:03d}" for s in range(1, stores + 1)],
                                               receipts_per_store),
                         "age": faces["real_age"].to_numpy(float),
                         "gender": faces.get("gender", pd.Series([""] * n)).fillna("").to_numpy(),
                         "face_path": faces["path"].to_numpy(), "face_file": faces["file_name"]})
    minor = cust["age"].to_numpy() < 18
    wants = rng.random(n) < np.where(minor, 0.5, 0.28)
    seek_lax = wants & minor & (rng.random(n) < 0.7)
    lane, close_s = np.zeros(n, dtype=int), np.zeros(n)
    for store, idx in cust.groupby("store_id").indices.items():
        lane[idx], close_s[idx] = _close_times(staff, store, len(idx), seek_lax[idx], rng)
    cust["lane_id"], cust["close_s"] = lane, close_s
    cust["shift"] = (close_s >= SHIFT_CHANGE_S).astype(int)
    cust = cust.merge(staff, on=["store_id", "lane_id", "shift"], how="left")
    asks = np.where(cust["lax"], rng.random(n) < 0.05, (cust["age"] < 25) & (rng.random(n) < 0.85))
    cust["attempted_restricted"], cust["refused"] = wants, wants & asks & minor
    return cust


def _receipt_ids(cust: pd.DataFrame, has_receipt: np.ndarray, run_date: str) -> np.ndarray:
    """Receipt ids numbered per day in (store, till time) order; "" for customers without one."""
    order = np.lexsort((cust["close_s"].to_numpy(), cust["store_id"].to_numpy()))
    receipt_id = np.full(len(cust), "", dtype=object)
    seq = 0
    for i in order:
        if has_receipt[i]:
            seq += 1
            receipt_id[i] = f"R-{run_date.replace('-', '')}-{cust.at[i, 'store_id']}-{seq:06d}"
    return receipt_id


def _photos(cust: pd.DataFrame, staff: pd.DataFrame, test_faces: pd.DataFrame,
            day_start: dt.datetime, rng: np.random.Generator) -> pd.DataFrame:
    """Photos: most customers (with or without a receipt), a few late shots, stray passers-by,
    a few broken files, photos without metadata and metadata without photos."""
    n = len(cust)
    close_s = cust["close_s"].to_numpy()
    taken = rng.random(n) < PHOTO_RATE
    delay = np.where(rng.random(n) < LATE_PHOTO_RATE, rng.uniform(15, 40, n),
                     rng.uniform(*WINDOW_FACE_BEFORE_CLOSE_S, n))
    shot = cust[taken].assign(capture_s=(close_s - delay + cust["camera_offset_s"].to_numpy()
                                         + rng.normal(0, 0.2, n))[taken])
    n_stray = int(round(STRAY_RATE * n))
    stray_at = staff.drop_duplicates(["store_id", "lane_id"]).sample(n_stray, replace=True,
                                                                       random_state=rng)
    stray_faces = shopper_faces(test_faces, n_stray, rng)
    stray = stray_at.assign(capture_s=rng.uniform(OPEN_S, CLOSE_S, n_stray), receipt_id="",
                            age=stray_faces["real_age"].to_numpy(float),
                            face_path=stray_faces["path"].to_numpy(),
                            face_file=stray_faces["file_name"].to_numpy())
    photos = pd.concat([shot, stray], ignore_index=True)
    photos["photo_id"] = _photo_ids(len(photos), rng)
    photos = photos.sort_values(["store_id", "lane_id", "capture_s"], ignore_index=True)
    photos["captured_at"] = _timestamp(day_start, photos["capture_s"].to_numpy())
    all_idx = np.arange(len(photos))
    bad = _pick(rng, all_idx, 0.01)
    rest = np.setdiff1d(all_idx, bad)
    no_meta = _pick(rng, rest, 0.005)
    no_file = _pick(rng, np.setdiff1d(rest, no_meta), 0.005)
    photos["corrupt"] = ""
    photos.loc[bad, "corrupt"] = [("truncated", "garbage", "empty")[k % 3] for k in range(len(bad))]
    photos["has_metadata"] = ~np.isin(all_idx, no_meta)
    photos["has_file"] = ~np.isin(all_idx, no_file)
    return photos


def _with_landing_faults(run_date: str, catalogue: pd.DataFrame, sold: pd.DataFrame,
                         lines: pd.DataFrame, photos: pd.DataFrame, rng: np.random.Generator,
                         summary: dict) -> SimulatedDay:
    """Landing-format rows plus the till export's faults (each injected fault counted)."""
    receipts = pd.DataFrame({"receipt_id": sold["receipt_id"], "store_id": sold["store_id"],
                             "lane_id": sold["lane_id"].astype(str),
                             "cashier_id": sold["cashier_id"], "closed_at": sold["closed_at"],
                             "total_rub": sold["total_rub"].map("{:.2f}".format)})
    fault = pd.Series("", index=sold.index)
    clean = np.flatnonzero(~sold["restricted_sold"].to_numpy())
    bad_time = _pick(rng, clean, 0.003)
    receipts.loc[bad_time, "closed_at"] = f"{run_date} 25:61"
    fault[bad_time] = "bad_timestamp"
    dupes = receipts.loc[_pick(rng, np.setdiff1d(clean, bad_time), 0.003)]
    out_lines = pd.DataFrame({"receipt_id": lines["receipt_id"], "product_id": lines["product_id"],
                              "quantity": lines["quantity"].astype(str),
                              "price_rub": lines["list_price_rub"].map("{:.2f}".format)})
    hosts = out_lines.loc[_pick(rng, np.arange(len(out_lines)), 0.002)]
    unknown_product = hosts.assign(product_id="P9999")
    zero_quantity = out_lines.loc[_pick(rng, np.arange(len(out_lines)), 0.002)].assign(quantity="0")
    orphan = out_lines.loc[_pick(rng, np.arange(len(out_lines)), 0.002)].assign(
        receipt_id=lambda d: d["receipt_id"].str.replace("R-", "R-X", regex=False))
    out_lines = pd.concat([out_lines, unknown_product, zero_quantity, orphan])
    out_lines = out_lines.sort_values("receipt_id", kind="stable", ignore_index=True)
    receipts = pd.concat([receipts, dupes]).sort_values("receipt_id", kind="stable",
                                                         ignore_index=True)
    truth = sold.assign(landing_fault=fault.to_numpy(),
                        sold_to_minor=sold["restricted_sold"] & (sold["age"] < 18))
    photo_of = photos.loc[photos.receipt_id != ""].set_index("receipt_id")["photo_id"]
    truth["photo_id"] = truth["receipt_id"].map(photo_of).fillna("")
    truth = truth.rename(columns={"age": "customer_age", "gender": "customer_gender",
                                  "lax": "lax_cashier"})[
        ["receipt_id", "store_id", "lane_id", "cashier_id", "customer_age", "customer_gender",
         "face_file", "photo_id", "attempted_restricted", "restricted_sold", "sold_to_minor",
         "lax_cashier", "landing_fault"]]
    summary = {**summary, "injected": {
        "bad_timestamp": len(bad_time), "duplicate_receipt_id": len(dupes),
        "unknown_product": len(unknown_product), "non_positive_quantity": len(zero_quantity),
        "unknown_receipt": len(orphan),
        "corrupt_photos": int((photos.corrupt != "").sum()),
        "photos_without_metadata": int((~photos.has_metadata).sum()),
        "metadata_without_file": int((~photos.has_file).sum()),
    }}
    products = catalogue[["product_id", "name", "category", "age_restricted"]].copy()
    products["age_restricted"] = products["age_restricted"].map({True: "true", False: "false"})
    photos = photos.rename(columns={"age": "customer_age"})[
        ["photo_id", "store_id", "lane_id", "captured_at", "receipt_id", "customer_age",
         "face_file", "face_path", "corrupt", "has_metadata", "has_file"]]
    return SimulatedDay(run_date, products, receipts, out_lines, photos, truth, summary)
