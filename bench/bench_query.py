"""Benchmark the analysts' queries on 30 days x 50 stores of synthetic report partitions.

Usage: .venv/bin/python bench/bench_query.py [--days 30] [--stores 50] [--repeats 7] [--root DIR]
       [--spark]

1. Generates contract-shaped partitions (docs/data-contract.md) with numpy + pyarrow: per store
   and day ~1,600 matched receipts split over 7 age groups and 21 categories with age-dependent
   propensities (jobs.simulator.catalogue), daily chain-wide top lists, 6 cashiers per store, ~1,700 scored
   photos per store and day. Not the Spark jobs' output, but the same tables, types and sizes.
2. Times each query in process (fresh DuckDB connection per run, as the CLI does), the whole
   `checkout-age query ...` command as a subprocess (interpreter start, imports, parse, query,
   output), and `checkout-age report html`. Medians of --repeats runs.
3. Writes bench/results/bench_query.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from jobs.analytics.query import DuckDBEngine, make_filters, run_query
from jobs.contract import SCHEMAS
from jobs.simulator.catalogue import CATEGORIES, PROFILE_AGES, build_catalogue
from model.config import AGE_GROUPS

# The contract-shaped partition writer the query tests use (no Spark needed).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "jobs"))
from contract_writer import write_day  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "bench_query.json"
GROUPS = [name for name, _, _ in AGE_GROUPS]
GROUP_AGES = np.array([15, 21, 30, 40, 50, 60, 72])
GROUP_SHARE = np.array([0.04, 0.12, 0.22, 0.2, 0.17, 0.14, 0.11])
CASHIERS = 6


def _propensity() -> np.ndarray:
    """(groups, categories) chance that a receipt of the group holds the category."""
    raw = np.array([[c.popularity * np.interp(a, PROFILE_AGES, c.profile) for c in CATEGORIES]
                    for a in GROUP_AGES])
    return np.clip(raw * 0.35, 0, 0.95)


def generate(root: Path, days: int, stores: int, seed: int = 7) -> dict[str, int]:
    """Write every report table for `days` days from 2026-03-01; return rows per table."""
    rng = np.random.default_rng(seed)
    propensity = _propensity()
    names = [c.name for c in CATEGORIES]
    prices = np.array([sum(c.price_rub) / 2 for c in CATEGORIES])
    restricted = np.array([c.restricted for c in CATEGORIES])
    catalogue = build_catalogue()
    counts: dict[str, int] = {}
    store_ids = [f"S{s + 1:03d}" for s in range(stores)]
    for d in range(days):
        day = (dt.date(2026, 3, 1) + dt.timedelta(days=d)).isoformat()
        segments = []
        chain = np.zeros((len(GROUPS), len(names)), dtype=np.int64)
        chain_segment = np.zeros(len(GROUPS), dtype=np.int64)
        for store in store_ids:
            seg = rng.multinomial(int(rng.integers(1200, 2000)), GROUP_SHARE)
            cells = rng.binomial(seg[:, None], propensity)
            units = cells + rng.poisson(cells * 0.4)
            revenue = np.round(units * prices * rng.uniform(0.8, 1.2, cells.shape), 2)
            seg_revenue, cat_receipts = revenue.sum(axis=1), cells.sum(axis=0)
            chain += cells
            chain_segment += seg
            for g, group in enumerate(GROUPS):
                for c, category in enumerate(names):
                    if cells[g, c]:
                        conf = cells[g, c] / seg[g]
                        segments.append((store, group, category, int(cells[g, c]),
                                         int(units[g, c]), float(revenue[g, c]), int(seg[g]),
                                         float(seg_revenue[g]), int(cat_receipts[c]),
                                         int(seg.sum()), revenue[g, c] / seg_revenue[g],
                                         cells[g, c] / seg.sum(), conf,
                                         conf / (cat_receipts[c] / seg.sum())))
        tables = {"segment_category": _columns(segments, "segment_category")}
        tables["recommendations"] = _recommendations(rng, chain, chain_segment, names, catalogue)
        comp, flags = _compliance(rng, store_ids, day, restricted)
        tables["compliance"], tables["compliance_flags"] = comp, flags
        tables["photo_scores"] = _photos(rng, store_ids, day)
        tables["photo_quarantine"] = pa.Table.from_pylist(
            [{"photo_id": f"q-{day}-{i}", "reason": "not_an_image", "detail": "bench"}
             for i in range(20)], schema=SCHEMAS["photo_quarantine"])
        tables["receipt_quarantine"] = pa.Table.from_pylist(
            [{"source_file": "receipts.csv", "line_no": i + 2, "reason": "bad_timestamp",
              "detail": "bench"} for i in range(5)], schema=SCHEMAS["receipt_quarantine"])
        tables["run_quality"] = _quality(tables["photo_scores"], chain_segment.sum(), rng)
        for table, data in tables.items():
            write_day(root, table, day, data)
            counts[table] = counts.get(table, 0) + data.num_rows
    return counts


def _columns(rows: list[tuple], table: str) -> pa.Table:
    schema = SCHEMAS[table]
    return pa.Table.from_pylist([dict(zip(schema.names, r, strict=True)) for r in rows],
                                schema=schema)


def _recommendations(rng, chain, chain_segment, names, catalogue) -> pa.Table:
    rows, all_receipts = [], int(chain_segment.sum())
    product_ids, product_names = catalogue["product_id"].tolist(), catalogue["name"].tolist()
    product_cats = catalogue["category"].tolist()
    for g, group in enumerate(GROUPS):
        items = [("category", n, n, n, int(chain[g, c]), int(chain[:, c].sum()))
                 for c, n in enumerate(names)]
        picks = rng.choice(len(product_ids), 40, replace=False)
        for p in picks:
            item = int(rng.integers(50, 3000))
            items.append(("product", product_ids[p], product_names[p], product_cats[p],
                          int(rng.binomial(item, min(1.0, chain_segment[g] / all_receipts * 1.5))),
                          item))
        for kind in ("category", "product"):
            scored = []
            for k, item_id, name, category, receipts, item_receipts in items:
                if k != kind or not receipts:
                    continue
                lift = receipts / chain_segment[g] / (item_receipts / all_receipts)
                if receipts / all_receipts >= 0.01 and lift > 1:
                    scored.append((lift, receipts, item_id, name, category, item_receipts))
            scored.sort(key=lambda s: (-s[0], -s[1], s[2]))
            for rank, (lift, receipts, item_id, name, category, item_receipts) in enumerate(
                    scored[:10], 1):
                rows.append((group, kind, item_id, name, category, receipts,
                             int(chain_segment[g]), item_receipts, all_receipts,
                             receipts / all_receipts, receipts / chain_segment[g], lift, rank))
    return _columns(rows, "recommendations")


def _compliance(rng, store_ids, day, restricted) -> tuple[pa.Table, pa.Table]:
    rows, flags = [], []
    base = dt.datetime.fromisoformat(f"{day}T05:00:00+00:00")
    for store in store_ids:
        for c in range(CASHIERS):
            cashier = f"{store}-C{c + 1:02d}"
            receipts = int(rng.integers(200, 400))
            restricted_n = int(rng.binomial(receipts, 0.12))
            with_photo = int(rng.binomial(restricted_n, 0.8))
            flagged = int(rng.binomial(with_photo, 0.25 if c == 0 else 0.04))
            rows.append((store, cashier, receipts, restricted_n, with_photo, flagged,
                         flagged / with_photo if with_photo else None, restricted_n - with_photo,
                         25))
            for f in range(flagged):
                flags.append((f"R-{day.replace('-', '')}-{store}-{c:02d}{f:04d}", store,
                              c % 4 + 1, cashier,
                              base + dt.timedelta(seconds=int(rng.integers(0, 54000))),
                              f"ph-{store}-{c}-{f}", float(rng.uniform(14, 25)), "v0003",
                              int(rng.integers(1, 4)), float(rng.uniform(90, 900)), 25))
    return _columns(rows, "compliance"), _columns(flags, "compliance_flags")


def _photos(rng, store_ids, day, per_store: int = 1700) -> pa.Table:
    n = per_store * len(store_ids)
    group = rng.choice(len(GROUPS), n, p=GROUP_SHARE)
    ages = np.clip(GROUP_AGES[group] + rng.normal(0, 3, n), 10, 90)
    bins = np.array([18, 25, 35, 45, 55, 65])
    start = int(dt.datetime.fromisoformat(f"{day}T05:00:00+00:00").timestamp() * 1e6)
    return pa.table({
        "photo_id": [f"ph-{day}-{i:06d}" for i in range(n)],
        "store_id": np.repeat(store_ids, per_store),
        "lane_id": pa.array(rng.integers(1, 7, n), pa.int32()),
        "captured_at": pa.array(start + rng.integers(0, 54000 * 10**6, n), SCHEMAS[
            "photo_scores"].field("captured_at").type),
        "age_pred_years": ages,
        "age_group": np.array(GROUPS)[np.digitize(ages, bins)],
        "model_version": ["v0003"] * n,
    }, schema=SCHEMAS["photo_scores"])


def _quality(photos: pa.Table, matched: int, rng) -> pa.Table:
    ages = photos.column("age_pred_years").to_numpy()
    scored = photos.num_rows
    matched = min(int(matched), scored)
    valid = int(matched / 0.85)
    values, freq = np.unique(np.array(photos.column("age_group").to_pylist()),
                             return_counts=True)
    groups = dict(zip(values.tolist(), freq.tolist(), strict=True))
    row = {"photos_in": scored + 20, "photos_scored": scored, "photos_quarantined": 20,
           "photos_matched": matched, "photos_unmatched": scored - matched,
           "receipts_in": valid + 5, "receipts_valid": valid, "receipts_quarantined": 5,
           "receipts_matched": matched, "receipts_unmatched": valid - matched,
           "lines_in": valid * 4 + 7, "lines_valid": valid * 4, "lines_quarantined": 7,
           "match_rate": matched / valid, "age_pred_p10": float(np.percentile(ages, 10)),
           "age_pred_p50": float(np.percentile(ages, 50)),
           "age_pred_p90": float(np.percentile(ages, 90)),
           "age_group_counts": json.dumps({g: int(groups.get(g, 0)) for g in GROUPS}),
           "model_version": "v0003", "match_window_s": 10, "challenge_age": 25}
    return pa.Table.from_pylist([row], schema=SCHEMAS["run_quality"])


QUERIES = [
    ("segments, all stores", "segments", {}, {}),
    ("segments, one store + age group", "segments", {"store": "S012", "age_group": "25-34"}, {}),
    ("segments, per store", "segments", {}, {"by_store": True}),
    ("recommendations", "recommendations", {}, {"min_support": 0.01, "top_n": 10}),
    ("compliance, all cashiers", "compliance", {}, {}),
    ("compliance, one cashier", "compliance", {"cashier": "S012-C01"}, {}),
    ("flags, one store", "flags", {"store": "S012"}, {}),
    ("quality", "quality", {}, {}),
    ("unknown store (error path)", "segments", {"store": "S999"}, {}),
]
CLI = [
    ("query segments --store S012 --age-group 25-34", ["query", "segments", "--store", "S012",
                                                      "--age-group", "25-34"]),
    ("query segments (all stores, csv)", ["query", "segments", "--format", "csv"]),
    ("query recommendations", ["query", "recommendations"]),
    ("query compliance", ["query", "compliance"]),
    ("query quality --format json", ["query", "quality", "--format", "json"]),
]


def _median_time(fn, repeats: int) -> dict[str, float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return {"median_s": round(statistics.median(times), 4), "min_s": round(min(times), 4),
            "max_s": round(max(times), 4)}


def _in_process(root: Path, first: str, last: str, repeats: int) -> dict[str, dict]:
    out = {}
    for label, name, filters, options in QUERIES:
        def once(name=name, filters=filters, options=options):
            engine = DuckDBEngine(root)  # a fresh connection, as each CLI call has
            try:
                return run_query(engine, name, make_filters(first, last, **filters), **options)
            except Exception as exc:  # the error path is timed too
                return exc
        result = once()
        out[label] = {**_median_time(once, repeats),
                      "rows": len(result.rows) if hasattr(result, "rows") else str(result)}
        print(f"  {label:38s} {out[label]['median_s'] * 1000:7.1f} ms  ({out[label]['rows']})")
    return out


def _command() -> list[str]:
    script = Path(sys.executable).with_name("checkout-age")
    return [str(script)] if script.exists() else [sys.executable, "-m", "jobs.cli.main"]


def _cli(root: Path, first: str, last: str, repeats: int) -> dict[str, dict]:
    out = {}
    base = _command()
    runs = [("python -c pass (interpreter floor)", [sys.executable, "-c", "pass"]),
            ("checkout-age --help", [*base, "--help"])]
    runs += [(label, [*base, *args, "--from", first, "--to", last, "--root", str(root)])
             for label, args in CLI]
    runs.append(("report html", [*base, "report", "html", "--date", first, "--root", str(root),
                                 "--out", str(root / "html" / "bench.html")]))
    for label, argv in runs:
        def once(argv=argv):
            subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        out[label] = _median_time(once, repeats)
        print(f"  {label:48s} {out[label]['median_s'] * 1000:7.1f} ms")
    return out


def _spark(root: Path, first: str, last: str) -> dict[str, float]:
    from jobs.analytics.query_spark import SparkEngine
    from jobs.daily.spark import build_spark

    started = time.perf_counter()
    spark = build_spark("bench-query", "local[2]")
    session_s = time.perf_counter() - started
    engine = SparkEngine(spark, root)
    out = {"session_start_s": round(session_s, 2)}
    for label, name, filters, options in QUERIES[:5]:
        started = time.perf_counter()
        run_query(engine, name, make_filters(first, last, **filters), **options)
        out[label + " (first run)"] = round(time.perf_counter() - started, 3)
        print(f"  spark {label:32s} {out[label + ' (first run)']:.2f} s")
    spark.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--stores", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--root", type=Path, help="keep the generated data here")
    parser.add_argument("--spark", action="store_true", help="also time the Spark engine once")
    args = parser.parse_args()
    root = args.root or Path(tempfile.mkdtemp(prefix="bench-query-"))
    first = "2026-03-01"
    last = (dt.date(2026, 3, 1) + dt.timedelta(days=args.days - 1)).isoformat()
    if not (root / "reports" / "run_quality" / f"date={last}").exists():
        started = time.perf_counter()
        rows = generate(root, args.days, args.stores)
        print(f"generated {args.days} days x {args.stores} stores in "
              f"{time.perf_counter() - started:.1f} s: {rows}")
    else:
        print(f"reusing {root}")
    con = duckdb.connect()
    rows = {t: con.execute("SELECT count(*) FROM read_parquet(?)",
                           [f"{root}/reports/{t}/date=*/*.parquet"]).fetchone()[0]
            for t in SCHEMAS if (root / "reports" / t).exists()}
    size = sum(f.stat().st_size for f in (root / "reports").rglob("*.parquet"))
    load_start = os.getloadavg()[0]
    print("in process (fresh DuckDB connection each run):")
    in_process = _in_process(root, first, last, args.repeats)
    print("whole command (subprocess wall time):")
    cli = _cli(root, first, last, args.repeats)
    results = {
        "what": f"analysts' queries over {args.days} days x {args.stores} stores of reports",
        "machine": {"python": platform.python_version(), "duckdb": duckdb.__version__,
                    "cpus": os.cpu_count(), "platform": platform.platform(),
                    # Other work shares these cores: a high load means pessimistic timings.
                    "load_average_1m": [load_start, os.getloadavg()[0]]},
        "data": {"days": args.days, "stores": args.stores, "rows": rows,
                 "parquet_bytes": size},
        "repeats": args.repeats,
        "query_in_process": in_process,
        "cli_wall": cli,
        "target_s": 1.0,
        "all_cli_queries_under_target": all(
            v["median_s"] < 1.0 for k, v in cli.items() if k.startswith("query")),
    }
    if args.spark:
        print("spark engine (one run each, includes view creation):")
        results["spark_engine"] = _spark(root, first, last)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
