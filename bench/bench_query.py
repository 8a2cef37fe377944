"""Benchmark the analysts' queries on synthetic report partitions, from the days and from rollups.

Usage: .venv/bin/python bench/bench_query.py [--days 30] [--stores 50] [--repeats 7] [--root DIR]
       [--photos-per-store 1700] [--out FILE] [--spark]
       a year of the chain: --days 365 --stores 500 --repeats 3 --photos-per-store 40
       --out bench/results/bench_query_year.json

1. Generates contract-shaped partitions (docs/data-contract.md) with numpy + pyarrow: per store
   and day ~1,600 matched receipts split over 7 age groups and 21 categories with age-dependent
   propensities (jobs.simulator.catalogue), daily chain-wide top lists, 6 cashiers per store, ~1,700 scored
   photos per store and day. Not the Spark jobs' output, but the same tables, types and sizes.
2. Times each query in process (fresh DuckDB connection per run, as the CLI does), the whole
   `checkout-age query ...` command as a subprocess (interpreter start, imports, parse, query,
   output), and `checkout-age report html`. Medians of --repeats runs.
   Then builds the monthly rollups (`jobs.analytics.rollups`, timed) and times everything again;
   every in-process answer from the rollups is compared with the one from the days.
3. Writes bench/results/bench_query.json (or --out) with the tables' rows and Parquet bytes.
   photo_scores at 1,700 photos per store and day would be 310 M rows for a year of 500
   stores; --photos-per-store keeps that table (read only by `quality --by-lane` and the daily
   page) to a size this machine can write.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
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


def generate(root: Path, days: int, stores: int, seed: int = 7,
             photos_per_store: int = 1700) -> dict[str, int]:
    """Write every report table for `days` days from 2026-03-01; return rows per table."""
    rng = np.random.default_rng(seed)
    propensity = _propensity()
    names = np.array([c.name for c in CATEGORIES])
    prices = np.array([sum(c.price_rub) / 2 for c in CATEGORIES])
    restricted = np.array([c.restricted for c in CATEGORIES])
    catalogue = build_catalogue()
    counts: dict[str, int] = {}
    store_ids = np.array([f"S{s + 1:03d}" for s in range(stores)])
    for d in range(days):
        day = (dt.date(2026, 3, 1) + dt.timedelta(days=d)).isoformat()
        segment, chain, chain_segment = _segments(rng, store_ids, names, prices, propensity)
        tables = {"segment_category": segment}
        tables["recommendations"] = _recommendations(rng, chain, chain_segment, list(names),
                                                     catalogue)
        comp, flags = _compliance(rng, store_ids, day, restricted)
        tables["compliance"], tables["compliance_flags"] = comp, flags
        tables["photo_scores"] = _photos(rng, list(store_ids), day, photos_per_store)
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


def _segments(rng, store_ids, names, prices, propensity) -> tuple[pa.Table, np.ndarray,
                                                                   np.ndarray]:
    """One day's segment_category (every store), and the chain's cell and segment counts."""
    n_stores = len(store_ids)
    seg = rng.multinomial(rng.integers(1200, 2000, n_stores), GROUP_SHARE)  # (stores, groups)
    cells = rng.binomial(seg[:, :, None], propensity[None])  # (stores, groups, categories)
    units = cells + rng.poisson(cells * 0.4)
    revenue = np.round(units * prices * rng.uniform(0.8, 1.2, cells.shape), 2)
    seg_revenue, cat_receipts = revenue.sum(axis=2), cells.sum(axis=1)
    all_receipts = seg.sum(axis=1)
    s, g, c = np.nonzero(cells)
    receipts = cells[s, g, c]
    conf = receipts / seg[s, g]
    table = pa.table({
        "store_id": store_ids[s], "age_group": np.array(GROUPS)[g], "category": names[c],
        "receipts": receipts, "units": units[s, g, c], "revenue_rub": revenue[s, g, c],
        "segment_receipts": seg[s, g], "segment_revenue_rub": seg_revenue[s, g],
        "category_receipts": cat_receipts[s, c], "all_receipts": all_receipts[s],
        "revenue_share": revenue[s, g, c] / seg_revenue[s, g],
        "support": receipts / all_receipts[s], "confidence": conf,
        "lift": conf / (cat_receipts[s, c] / all_receipts[s]),
    }).cast(SCHEMAS["segment_category"])
    return table, cells.sum(axis=0), seg.sum(axis=0)


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
    """Six cashiers per store (the first one lax), their day's counts and flagged receipts."""
    del restricted  # the categories' flag does not change the counts drawn here
    n = len(store_ids) * CASHIERS
    store = np.repeat(store_ids, CASHIERS)
    number = np.tile(np.arange(CASHIERS), len(store_ids))
    cashier = np.char.add(np.char.add(store.astype(str), "-C"),
                          np.char.zfill((number + 1).astype(str), 2))
    receipts = rng.integers(200, 400, n)
    restricted_n = rng.binomial(receipts, 0.12)
    with_photo = rng.binomial(restricted_n, 0.8)
    flagged = rng.binomial(with_photo, np.where(number == 0, 0.25, 0.04))
    comp = pa.table({
        "store_id": store, "cashier_id": cashier, "receipts": receipts,
        "restricted_receipts": restricted_n, "with_photo": with_photo, "flagged": flagged,
        "flag_rate": pa.array(np.where(with_photo > 0, flagged / np.maximum(with_photo, 1),
                                       np.nan), from_pandas=True),
        "no_photo": restricted_n - with_photo, "challenge_age": np.full(n, 25),
        "with_probability": pa.nulls(n, pa.int64()),
        "expected_minor_sales": pa.nulls(n, pa.float64()),
    }).cast(SCHEMAS["compliance"])
    owner = np.repeat(np.arange(n), flagged)
    k = len(owner)
    seq = np.arange(k) - np.repeat(np.cumsum(flagged) - flagged, flagged)
    base = int(dt.datetime.fromisoformat(f"{day}T05:00:00+00:00").timestamp() * 1e6)
    ids = np.char.add(np.char.add(np.char.add(f"R-{day.replace('-', '')}-", store[owner]),
                                  "-"), np.char.zfill((number[owner] * 10000 + seq).astype(str),
                                                      6))
    flags = pa.table({
        "receipt_id": ids, "store_id": store[owner], "lane_id": (number[owner] % 4 + 1),
        "cashier_id": cashier[owner],
        "closed_at": pa.array(base + rng.integers(0, 54000, k) * 10**6,
                              SCHEMAS["compliance_flags"].field("closed_at").type),
        "photo_id": np.char.add("ph-", ids), "age_pred_years": rng.uniform(14, 25, k),
        "model_version": np.full(k, "v0003"), "restricted_units": rng.integers(1, 4, k),
        "restricted_revenue_rub": rng.uniform(90, 900, k), "challenge_age": np.full(k, 25),
        "p_under_legal_age": pa.nulls(k, pa.float64()),
    }).cast(SCHEMAS["compliance_flags"])
    return comp, flags


def _photos(rng, store_ids, day, per_store: int = 1700) -> pa.Table:
    n = per_store * len(store_ids)
    group = rng.choice(len(GROUPS), n, p=GROUP_SHARE)
    ages = np.clip(GROUP_AGES[group] + rng.normal(0, 3, n), 10, 90)
    bins = np.array([18, 25, 35, 45, 55, 65])
    start = int(dt.datetime.fromisoformat(f"{day}T05:00:00+00:00").timestamp() * 1e6)
    columns = pa.table({
        "photo_id": [f"ph-{day}-{i:06d}" for i in range(n)],
        "store_id": np.repeat(store_ids, per_store),
        "lane_id": pa.array(rng.integers(1, 7, n), pa.int32()),
        "captured_at": pa.array(start + rng.integers(0, 54000 * 10**6, n), SCHEMAS[
            "photo_scores"].field("captured_at").type),
        "age_pred_years": ages,
        "age_group": np.array(GROUPS)[np.digitize(ages, bins)],
        "model_version": ["v0003"] * n,
        "faces_found": np.ones(n, dtype=np.int32),  # frames: one face each
        "face_w": rng.integers(64, 260, n).astype(np.int32),
    })
    missing = [f for f in SCHEMAS["photo_scores"] if f.name not in columns.column_names]
    for field in missing:
        columns = columns.append_column(field.name, pa.nulls(n, field.type))
    return columns.select(SCHEMAS["photo_scores"].names).cast(SCHEMAS["photo_scores"])


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
    ("quality by lane", "quality", {}, {"by_lane": True}),
    ("unknown store (error path)", "segments", {"store": "S999"}, {}),
]
CLI = [
    ("query segments --store S012 --age-group 25-34", ["query", "segments", "--store", "S012",
                                                      "--age-group", "25-34"]),
    ("query segments (all stores, csv)", ["query", "segments", "--format", "csv"]),
    ("query recommendations", ["query", "recommendations"]),
    ("query compliance", ["query", "compliance"]),
    ("query quality --format json", ["query", "quality", "--format", "json"]),
    ("query flags --store S012", ["query", "flags", "--store", "S012"]),
    ("query compliance --cashier S012-C01", ["query", "compliance", "--cashier", "S012-C01"]),
    ("query segments --by-store --format csv", ["query", "segments", "--by-store", "--format",
                                                "csv"]),
]


def _median_time(fn, repeats: int) -> dict[str, float]:
    if repeats == 0:
        return {}
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return {"median_s": round(statistics.median(times), 4), "min_s": round(min(times), 4),
            "max_s": round(max(times), 4)}


def _in_process(root: Path, first: str, last: str, repeats: int,
                use_rollups: bool = True) -> tuple[dict[str, dict], dict[str, object]]:
    out, answers = {}, {}
    for label, name, filters, options in QUERIES:
        def once(name=name, filters=filters, options=options):
            engine = DuckDBEngine(root, use_rollups=use_rollups)  # fresh, as each CLI call
            try:
                return run_query(engine, name, make_filters(first, last, **filters), **options)
            except Exception as exc:  # the error path is timed too
                return exc
        result = once()
        answers[label] = result.rows if hasattr(result, "rows") else str(result)
        out[label] = {**_median_time(once, repeats),
                      "rows": len(result.rows) if hasattr(result, "rows") else str(result)}
        if repeats:
            print(f"  {label:38s} {out[label]['median_s'] * 1000:7.1f} ms  "
                  f"({out[label]['rows']})")
    return out, answers


def _same(a: object, b: object) -> bool:
    """Equal answers; floats summed in another order may differ in the last bits only."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))
    return a == b


def _csv_paths_agree(root: Path, first: str, last: str) -> dict[str, bool]:
    """Per query: the CSV DuckDB writes itself (`--format csv`) is byte for byte the CSV of the
    fetched rows (`query_format.to_csv`, the path of the Spark engine)."""
    from jobs.analytics.query_format import to_csv

    out = {}
    for label, name, filters, options in QUERIES[:-1]:
        chosen = make_filters(first, last, **filters)
        direct = run_query(DuckDBEngine(root), name, chosen, as_csv=True, **options)
        rows = run_query(DuckDBEngine(root), name, chosen, **options)
        out[label] = {"written_by": "duckdb" if direct.csv is not None else "python",
                      "identical": to_csv(direct) == to_csv(rows)}
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
    runs.append(("report html (one day)", [*base, "report", "html", "--date", first, "--root",
                                           str(root), "--out", str(root / "html" / "bench.html")]))
    runs.append(("report html --from --to (whole range)", [
        *base, "report", "html", "--from", first, "--to", last, "--root", str(root),
        "--out", str(root / "html" / "bench-period.html")]))
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


def _sizes(root: Path, folder: str) -> dict[str, dict[str, int]]:
    """Rows, files and Parquet bytes per table under ROOT/<folder>."""
    con, out = duckdb.connect(), {}
    base = root / folder
    for table in sorted(p.name for p in base.iterdir()) if base.exists() else []:
        files = [f for f in (base / table).glob("*=*/*.parquet")]
        if files:
            rows = con.execute("SELECT count(*) FROM read_parquet(?)",
                               [[str(f) for f in files]]).fetchone()[0]
            out[table] = {"rows": rows, "files": len(files),
                          "parquet_bytes": sum(f.stat().st_size for f in files)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--stores", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--photos-per-store", type=int, default=1700)
    parser.add_argument("--keep-days-results", action="store_true",
                        help="reuse the day-partition figures of --out (time the rollups only)")
    parser.add_argument("--days-repeats", type=int,
                        help="repeats of the runs from the day partitions (default --repeats)")
    parser.add_argument("--root", type=Path, help="keep the generated data here")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--spark", action="store_true", help="also time the Spark engine once")
    args = parser.parse_args()
    root = args.root or Path(tempfile.mkdtemp(prefix="bench-query-"))
    first = "2026-03-01"
    last = (dt.date(2026, 3, 1) + dt.timedelta(days=args.days - 1)).isoformat()
    generated = None
    if not (root / "reports" / "run_quality" / f"date={last}").exists():
        started = time.perf_counter()
        generate(root, args.days, args.stores, photos_per_store=args.photos_per_store)
        generated = round(time.perf_counter() - started, 1)
        print(f"generated {args.days} days x {args.stores} stores in {generated} s")
    else:
        print(f"reusing {root}")
    shutil.rmtree(root / "rollups", ignore_errors=True)
    load_start = os.getloadavg()[0]
    print("from the day partitions, in process (fresh DuckDB connection each run):")
    days_repeats = args.days_repeats or args.repeats
    earlier = json.loads(args.out.read_text()) if args.keep_days_results else None
    if earlier:  # the answers from the days are recomputed once, for the comparison
        days_in_process, days_answers = _in_process(root, first, last, 0, False)
        days_in_process = earlier["from_days"]["query_in_process"]
        days_cli = earlier["from_days"]["cli_wall"]
        days_repeats = earlier["from_days"]["repeats"]
        load_start = earlier["machine"]["load_average_1m"][0]
    else:
        days_in_process, days_answers = _in_process(root, first, last, days_repeats, False)
        print("from the day partitions, whole command (subprocess wall time):")
        days_cli = _cli(root, first, last, days_repeats)
    started = time.perf_counter()
    from jobs.analytics.rollups import refresh

    refresh(str(root), dt.date.fromisoformat(first), dt.date.fromisoformat(last))
    rollup_s = round(time.perf_counter() - started, 1)
    print(f"built the rollups in {rollup_s} s")
    print("with rollups, in process:")
    in_process, answers = _in_process(root, first, last, args.repeats, True)
    print("with rollups, whole command:")
    cli = _cli(root, first, last, args.repeats)
    identical = {label: _same(answers[label], days_answers[label]) for label in answers}
    csv_agree = _csv_paths_agree(root, first, last)
    results = {
        "what": f"analysts' queries over {args.days} days x {args.stores} stores of reports",
        "machine": {"python": platform.python_version(), "duckdb": duckdb.__version__,
                    "cpus": os.cpu_count(), "platform": platform.platform(),
                    # Other work shares these cores: a high load means pessimistic timings.
                    "load_average_1m": [load_start, os.getloadavg()[0]]},
        "data": {"days": args.days, "stores": args.stores,
                 "photos_per_store_and_day": args.photos_per_store, "generated_s": generated,
                 "reports": _sizes(root, "reports"), "rollups": _sizes(root, "rollups"),
                 "rollups_built_s": rollup_s},
        "repeats": args.repeats,
        "from_days": {"repeats": days_repeats, "query_in_process": days_in_process, "cli_wall": days_cli},
        "query_in_process": in_process,
        "cli_wall": cli,
        "identical_figures_rollups_vs_days": identical,
        "csv_from_duckdb_same_bytes_as_from_rows": csv_agree,
        "target_s": 1.0,
        "all_cli_queries_under_target": all(
            v["median_s"] < 1.0 for k, v in cli.items() if k.startswith("query")),
    }
    if args.spark:
        print("spark engine (one run each, includes view creation):")
        results["spark_engine"] = _spark(root, first, last)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
