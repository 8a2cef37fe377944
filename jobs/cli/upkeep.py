"""`checkout-age drift | minimise-photos | rollup`: the daily run's steps after the reports job.

`drift` compares the day's predicted ages and no-face rate per store and lane with the trailing
window (writes `age_drift`; `check-quality` warns on its alarms). `minimise-photos` deletes the
day's photos not tied to a flagged restricted sale, once `check-quality` passes. `rollup`
rebuilds the monthly rollups the analysts' queries read. All are idempotent per day; exit 0
done, 1 refused (the day's checks fail), 2 user error.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from jobs.daily.arguments import add_day_arguments
from model.config import load_settings

EXIT_REFUSED = 1


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Attach `drift`, `minimise-photos` and `rollup`."""
    settings = load_settings()
    drift = subparsers.add_parser(
        "drift", help="per store and lane: the day's ages and no-face rate vs the last 28 days",
        description="Compare the day's predicted-age distribution (PSI over 5-year bins) and "
        "no-face rate (z of two proportions) per store and lane with the trailing reference "
        "window and write the age_drift partition. Alarms are warnings (check-quality prints "
        "them); too few photos give no verdict, with the reason.")
    add_day_arguments(drift, settings.data_root, "compare")
    drift.add_argument("--json", action="store_true", help="print the rows as JSON")
    drift.set_defaults(handler=_drift)

    minimise = subparsers.add_parser(
        "minimise-photos",
        help="delete the day's photos not tied to a flagged restricted sale (after its checks)",
        description="Photo minimisation (setting photo_minimisation, default on): once the "
        "day's reports pass check-quality, delete its landing photos that no flagged restricted "
        "sale points to; flagged ones stay for photo_retention_days. The day can then not be "
        "scored again. Exit 1 (nothing deleted) when the day's checks fail.")
    add_day_arguments(minimise, settings.data_root, "minimise")
    minimise.add_argument("--json", action="store_true", help="print the result as JSON")
    minimise.set_defaults(handler=_minimise)

    rollup = subparsers.add_parser(
        "rollup", help="rebuild the monthly rollups the queries read (stale months only)",
        description="Rebuild ROOT/rollups/<rollup>/month=YYYY-MM for every month of the range "
        "whose day partitions changed since it was built (--force: every month). The daily run "
        "calls it for its day; queries never use a stale month (they read its days instead).")
    rollup.add_argument("--date", help="the month of this day (the daily run's form)")
    rollup.add_argument("--from", dest="date_from", metavar="DATE", help="first day of a range")
    rollup.add_argument("--to", dest="date_to", metavar="DATE", help="last day of a range")
    rollup.add_argument("--root", default=settings.data_root,
                        help="local data root (default %(default)s)")
    rollup.add_argument("--force", action="store_true", help="rebuild fresh months too")
    rollup.add_argument("--json", action="store_true", help="print what was done as JSON")
    rollup.set_defaults(handler=_rollup)


def _local(root: str, step: str) -> bool:
    from jobs.contract import is_local

    if is_local(root):
        return True
    sys.stdout.write(f"{step}: skipped, {root} is not a local data root (local roots only)\n")
    return False


def _drift(args: argparse.Namespace) -> int:
    from jobs.contract import normalise_root
    from jobs.daily import drift

    if not _local(args.root, "drift"):
        return 0
    settings = load_settings()
    limits = drift.DriftLimits(settings.drift_min_photos, settings.drift_max_psi,
                               settings.drift_max_no_face_z)
    rows = drift.run(normalise_root(args.root), args.date, settings.drift_reference_days,
                     limits)
    if args.json:
        sys.stdout.write(json.dumps(rows, sort_keys=True) + "\n")
        return 0
    alarms = [r for r in rows if r["alarm"]]
    for r in alarms:
        lane = "all lanes" if r["lane_id"] is None else f"lane {r['lane_id']}"
        sys.stdout.write(f"ALARM {r['store_id']} {lane}: {r['reason']}\n")
    silent = sum(1 for r in rows if r["reason"] and not r["alarm"])
    sys.stdout.write(f"drift for {args.date}: {len(rows)} store and lane rows, {len(alarms)} "
                     f"alarms, {silent} without a verdict (too few photos)\n")
    return 0


def _minimise(args: argparse.Namespace) -> int:
    from jobs.daily import ops
    from jobs.daily.minimise import minimise_photos

    settings = load_settings()
    if not settings.photo_minimisation:
        sys.stdout.write("photo minimisation is off (setting photo_minimisation): every photo "
                         f"stays until retention ({settings.photo_retention_days} days)\n")
        return 0
    checked = ops.check_quality(args.root, args.date, settings.min_match_rate,
                                max_no_face_rate=settings.max_no_face_rate)
    if not checked.ok:
        sys.stderr.write(f"checkout-age: photos of {args.date} not minimised: its reports fail "
                         "check-quality (" + "; ".join(checked.problems) + ")\n")
        return EXIT_REFUSED
    result = minimise_photos(args.root, args.date, settings.photo_retention_days)
    if args.json:
        sys.stdout.write(json.dumps(asdict(result), sort_keys=True) + "\n")
        return 0
    again = " (already minimised; finished)" if result.already else ""
    sys.stdout.write(
        f"photos of {result.run_date}{again}: kept {result.kept} ({result.kept_reason}, until "
        f"{result.keep_until}), deleted {result.deleted} ({result.deleted_reason})\n")
    return 0


def _rollup(args: argparse.Namespace) -> int:
    from jobs.analytics import rollups
    from jobs.analytics.query_sql import make_filters
    from model.errors import UserError

    if not _local(args.root, "rollup"):
        return 0
    if args.date and (args.date_from or args.date_to):
        raise UserError("give --date or --from/--to, not both")
    if not (args.date or args.date_from):
        raise UserError("give --date D (its month) or --from D1 [--to D2]")
    filters = make_filters(args.date or args.date_from, args.date or args.date_to)
    runs = rollups.refresh(args.root, filters.date_from, filters.date_to, force=args.force)
    if args.json:
        sys.stdout.write(json.dumps([asdict(r) for r in runs], sort_keys=True) + "\n")
        return 0
    built = [r for r in runs if r.action != "fresh"]
    for r in built:
        sys.stdout.write(f"{r.action} {r.table} {r.month}\n")
    sys.stdout.write(f"rollups for {filters.describe()}: {len(built)} rebuilt, "
                     f"{len(runs) - len(built)} fresh\n")
    return 0
