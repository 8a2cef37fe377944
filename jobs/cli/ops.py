"""`checkout-age landing-ready | check-quality | retention`: the daily run's operations commands.

Each is one step of the `checkout_age_daily` DAG and runs as well by hand. Exit status carries the
verdict so a scheduler needs no parsing: 0 fine, 1 quality check failed, 2 user error,
3 (landing-ready only) not landed yet.
"""

from __future__ import annotations

import argparse
import json
import sys

from jobs.daily.arguments import add_day_arguments
from model.config import load_settings

EXIT_CHECK_FAILED = 1
EXIT_NOT_READY = 3


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Attach the operations commands to the top-level parser."""
    settings = load_settings()

    ready = subparsers.add_parser(
        "landing-ready",
        help="exit 0 when a day's landing marker is there, 3 while it is not",
        description="Is the day's landing data complete (its `_COMPLETE` marker written)? Exit 0 "
        "when it is, 3 while it is not; 2 when its photos were already deleted by retention.",
    )
    add_day_arguments(ready, settings.data_root, "check")
    ready.set_defaults(handler=_landing_ready)

    quality = subparsers.add_parser(
        "check-quality",
        help="fail (exit 1) when a day's counts do not add up or too few receipts matched a photo",
        description="Check the day's run_quality row against the report tables and the landing "
        "marker: photos in = scored + quarantined, receipts and lines add up, rows written match "
        "the counts, one model version, match rate at least the floor. Exit 1 with a one-line "
        "reason when not.",
    )
    add_day_arguments(quality, settings.data_root, "check")
    quality.add_argument(
        "--min-match-rate",
        type=float,
        default=settings.min_match_rate,
        help="lowest acceptable receipts_matched / receipts_valid (default: %(default)s, "
        "setting min_match_rate)",
    )
    quality.add_argument(
        "--max-no-face-rate",
        type=float,
        default=settings.max_no_face_rate,
        help="highest acceptable share of camera frames without a usable face (default: "
        "%(default)s, setting max_no_face_rate)",
    )
    quality.add_argument(
        "--model-version", help="the model version the run meant to score with (checked if given)"
    )
    quality.add_argument("--json", action="store_true", help="print the verdict as JSON")
    quality.set_defaults(handler=_check_quality)

    retention = subparsers.add_parser(
        "retention",
        help="delete landing photos of days older than N days before the run date",
        description="Delete the landing photos (personal data) of every day older than --days "
        "before --date; receipts and reports stay. Counted from the run date, not today, so "
        "reruns and backfills are idempotent.",
    )
    add_day_arguments(retention, settings.data_root, "count retention back from")
    retention.add_argument(
        "--days",
        type=int,
        default=settings.photo_retention_days,
        help="days of photos to keep before the run date (default: %(default)s, setting "
        "photo_retention_days)",
    )
    retention.add_argument("--json", action="store_true", help="print what was deleted as JSON")
    retention.set_defaults(handler=_retention)


def _landing_ready(args: argparse.Namespace) -> int:
    from jobs.daily import ops

    if ops.landing_ready(args.root, args.date):
        sys.stdout.write(f"landing complete for {args.date}\n")
        return 0
    sys.stdout.write(f"landing not complete for {args.date}: no {ops.COMPLETE_MARKER} yet\n")
    return EXIT_NOT_READY


def _check_quality(args: argparse.Namespace) -> int:
    from jobs.daily import ops

    result = ops.check_quality(args.root, args.date, args.min_match_rate, args.model_version,
                               max_no_face_rate=args.max_no_face_rate)
    quality = result.run_quality
    if args.json:
        verdict = {
            "date": result.run_date,
            "ok": result.ok,
            "problems": result.problems,
            "warnings": result.warnings,
            "min_match_rate": args.min_match_rate,
            "run_quality": quality,
        }
        sys.stdout.write(json.dumps(verdict, sort_keys=True, default=str) + "\n")
    elif result.ok:
        sys.stdout.write(
            f"quality ok for {result.run_date}: {quality['photos_in']} photos "
            f"({quality['photos_scored']} scored, {quality['photos_quarantined']} quarantined), "
            f"{quality['receipts_valid']} receipts, match rate {quality['match_rate']:.3f} "
            f">= {args.min_match_rate:.3f}, model {quality['model_version']}\n"
        )
    for warning in result.warnings:  # drift alarms warn, they never fail the run
        sys.stderr.write(f"checkout-age: warning for {result.run_date}: {warning}\n")
    if not result.ok:
        sys.stderr.write(
            f"checkout-age: quality check failed for {result.run_date}: "
            + "; ".join(result.problems)
            + "\n"
        )
        return EXIT_CHECK_FAILED
    return 0


def _retention(args: argparse.Namespace) -> int:
    from jobs.daily import ops

    cutoff, purged = ops.purge_old_photos(args.root, args.date, args.days)
    files = sum(day.files for day in purged)
    if args.json:
        report = {
            "date": args.date,
            "keep_days": args.days,
            "oldest_day_kept": cutoff,
            "deleted_files": files,
            "days": [vars(day) for day in purged],
        }
        sys.stdout.write(json.dumps(report, sort_keys=True) + "\n")
        return 0
    for day in purged:
        never = "" if day.had_reports else " (never scored)"
        sys.stdout.write(f"deleted {day.files} photos of {day.date}{never}\n")
    sys.stdout.write(
        f"retention for {args.date}: deleted {files} photo files from {len(purged)} days "
        f"before {cutoff} (keeping {args.days} days)\n"
    )
    return 0
