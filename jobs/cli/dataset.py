"""`checkout-age model validate | import | eda`: dataset commands.

Handlers import pandas, PIL and matplotlib only when they run, so `--help` stays instant.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXAMPLES_PER_REASON = 3


def _write(text: str) -> None:
    sys.stdout.write(text + "\n")


def _validate_report(args: argparse.Namespace):
    from model.config import load_settings
    from model.data.dataset import validate_dataset

    settings = load_settings()
    return validate_dataset(
        args.faces_dir,
        min_age=settings.min_age if args.min_age is None else args.min_age,
        max_age=settings.max_age if args.max_age is None else args.max_age,
        min_side=settings.min_side_px,
        max_side=settings.max_side_px,
        max_pixels=settings.max_pixels,
        cache_dir=None if args.no_cache else settings.cache_dir,
    )


def format_summary(summary: dict, rejected) -> list[str]:
    """Human lines: totals, per-reason counts with a few example files, duplicates."""
    rejected_total = sum(summary["rejected"].values())
    lines = [
        f"checked {summary['faces_dir']}: {summary['rows']} rows, "
        f"{summary['usable']} usable, {rejected_total} rejected"
    ]
    for reason, count in summary["rejected"].items():
        if not count:
            continue
        lines.append(f"  {reason:<22} {count:>6}")
        examples = rejected[rejected["reason"] == reason].head(EXAMPLES_PER_REASON)
        lines.extend(
            f"      row {r.row} {r.file_name or '(empty)'}: {r.detail}"
            for r in examples.itertuples()
        )
    lines.append(
        f"duplicate image groups: {summary['duplicate_groups']} "
        f"({summary['conflicting_duplicate_groups']} with conflicting ages)"
    )
    bands = ", ".join(f"{band} {n}" for band, n in summary["usable_by_band"].items())
    lines.append(f"usable by age band: {bands}")
    lines.append(f"fingerprint: {summary['fingerprint']}")
    return lines


def run_validate(args: argparse.Namespace) -> int:
    """Validate a face set and print the summary (exit 0 even with rejected rows)."""
    report = _validate_report(args)
    summary = report.summary()
    if args.rejected_csv is not None:
        args.rejected_csv.parent.mkdir(parents=True, exist_ok=True)
        report.rejected.to_csv(args.rejected_csv, index=False)
    if args.json:
        _write(json.dumps(summary, indent=2))
    else:
        for line in format_summary(summary, report.rejected):
            _write(line)
        if args.rejected_csv is not None:
            _write(f"rejected rows written to {args.rejected_csv}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    """Import a public dataset into the standard layout and print what happened."""
    from model.data.importers import import_appa_real, import_utkface

    importer = {"utkface": import_utkface, "appa-real": import_appa_real}[args.format]
    summary = importer(args.source, args.dest).as_dict()
    if args.json:
        _write(json.dumps(summary, indent=2))
        return 0
    skipped = sum(summary["skipped"].values())
    _write(
        f"imported {summary['imported']} of {summary['found']} from {summary['source']} "
        f"into {summary['dest']} ({summary['linked']} hard-linked, {summary['copied']} copied), "
        f"{skipped} skipped, {summary['other_files']} non-image files ignored"
    )
    for reason, count in summary["skipped"].items():
        _write(f"  {reason:<18} {count:>6}")
    for example in summary["skipped_examples"][:5]:
        _write(f"  e.g. {example['file']}: {example['reason']} ({example['detail']})")
    return 0


def run_eda(args: argparse.Namespace) -> int:
    """Validate a face set, then write histogram, sample grid and counts to --out."""
    from model.config import load_settings
    from model.data.eda import write_eda

    report = _validate_report(args)
    written = write_eda(
        report.usable, args.out, validation=report.summary(), seed=load_settings().seed
    )
    if args.json:
        _write(json.dumps(written, indent=2))
    else:
        for name, path in written.items():
            _write(f"{name}: {path}")
    return 0


def _add_dataset_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "faces_dir",
        type=Path,
        metavar="DIR",
        help="face set folder holding labels.csv and final_files/",
    )
    parser.add_argument("--min-age", type=int, help="lowest accepted real_age (default: settings)")
    parser.add_argument("--max-age", type=int, help="highest accepted real_age (default: settings)")
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="re-read every image instead of trusting the per-file result cache",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Attach `validate`, `import` and `eda` to the `model` command group."""
    validate = subparsers.add_parser(
        "validate",
        help="check every label row and image of a face set",
        description="Check labels.csv and every image; print per-reason counts that add up to "
        "the rows read. Exit 0 when the set was checked, even with rejected rows.",
    )
    _add_dataset_options(validate)
    validate.add_argument(
        "--rejected-csv",
        type=Path,
        metavar="PATH",
        help="also write every rejected row (row, file_name, reason, detail)",
    )
    validate.set_defaults(handler=run_validate)

    importer = subparsers.add_parser(
        "import",
        help="convert a public face-age dataset into the standard layout",
        description="Write DEST/labels.csv and DEST/final_files/ (hard links where possible).",
    )
    formats = importer.add_subparsers(dest="format", metavar="FORMAT", required=True)
    for name, text in (
        ("utkface", "UTKFace folder: files named age_gender_race_datetime.jpg"),
        ("appa-real", "APPA-REAL release: gt_avg_{train,valid,test}.csv + image folders"),
    ):
        parser = formats.add_parser(name, help=text, description=text)
        parser.add_argument("source", type=Path, metavar="SRC", help="downloaded dataset folder")
        parser.add_argument("dest", type=Path, metavar="DEST", help="new face set folder")
        parser.add_argument("--json", action="store_true", help="print JSON instead of text")
        parser.set_defaults(handler=run_import)

    eda = subparsers.add_parser(
        "eda",
        help="age histogram, sample photo grid and counts of a face set",
        description="Validate the set, then write age_histogram.png, sample_grid.png (faces: "
        "a training-data artifact, never for reports) and counts.json into --out.",
    )
    _add_dataset_options(eda)
    eda.add_argument("--out", type=Path, required=True, metavar="OUT", help="output folder")
    eda.set_defaults(handler=run_eda)
