"""`checkout-age query ...` and `checkout-age report html`: the analysts' interface.

Top-level imports stay light (argparse, config, the output formats): `jobs.cli.main` imports this
module to build its parser on every command, and a query answers in well under a second only if
nothing heavy loads first.
DuckDB, Spark and the HTML renderer are imported inside the handlers.
"""

from __future__ import annotations

import argparse
import sys

from jobs.analytics import query_format
from model.config import AGE_GROUPS, load_settings

_AGE_GROUPS = ", ".join(name for name, _, _ in AGE_GROUPS)
_QUERIES = {
    "segments": (
        "what each age group buys: counts per (age group, category), lift from the summed counts",
        "Per age group and category over the date range (all selected stores together, or per "
        "store with --by-store): receipts, units and revenue summed; segment, category and store "
        "totals de-duplicated per store and day; revenue_share, support, confidence and lift "
        "recomputed from the sums (never averaged).",
        ("store", "age_group"),
    ),
    "recommendations": (
        "items each age group buys more than average (lift > 1, support >= floor, top N)",
        "Top items by lift per age group and kind over the range, with the daily job's rule. "
        "Categories are exact (recomputed from segment_category, for any store selection). "
        "Products exist only in the chain-wide daily top lists, so a product's counts are pooled "
        "over the days it was listed (days_listed of days): exact for one day, optimistic over a "
        "range. With --store only categories are available.",
        ("store", "age_group"),
    ),
    "compliance": (
        "cashiers' restricted sales, matched photos and Challenge-age flags",
        "Per cashier over the range: receipts, restricted receipts, those with a matched photo, "
        "flagged ones (predicted age under the challenge age) and flag_rate = flagged / "
        "with_photo from the sums; expected_minor_sales = the sum of P(under the legal age) over "
        "restricted sales with a photo (summed over days, never averaged; with_probability of "
        "them had a probability); most expected sales to minors first. A flag is a screening "
        "signal (this sale deserves a look), not proof of a sale to a minor.",
        ("store", "cashier"),
    ),
    "flags": (
        "the flagged receipts behind compliance (receipt and photo ids for an auditor)",
        "One row per flagged receipt over the range, most likely minors first: receipt, store, "
        "lane, cashier, time, photo id (no images), predicted age, p_under_legal_age and its "
        "minor_tier ('likely minor' >= setting likely_minor_p 0.5, 'possible minor' >= "
        "possible_minor_p 0.2, 'probably adult', or 'no calibration' when the model had none), "
        "model version, restricted units and revenue.",
        ("store", "cashier"),
    ),
    "quality": (
        "daily run quality: photos, matches, quarantine, with a total row",
        "One run_quality row per day plus a `total` row: counts summed and match_rate from the "
        "sums. Age percentiles cannot be combined across days, so the total row leaves them "
        "empty (see each day's row).",
        (),
    ),
}


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Attach `query` (segments | recommendations | compliance | flags | quality) and `report`."""
    settings = load_settings()
    query = subparsers.add_parser(
        "query",
        help="answer an analyst's question from the report tables (fast, DuckDB)",
        description="Query the daily report tables over a date range. Counts are summed across "
        "days and stores and every ratio is recomputed from the sums. Errors (bad date, unknown "
        "store or cashier, no data in the range) print one line and exit 2.",
    )
    kinds = query.add_subparsers(dest="query", metavar="QUERY", required=True)
    for name, (short, description, filters) in _QUERIES.items():
        parser = kinds.add_parser(name, help=short, description=description)
        _common_options(parser, settings.data_root)
        if "store" in filters:
            parser.add_argument("--store", help="one store id, e.g. S012")
        if "age_group" in filters:
            parser.add_argument("--age-group", help=f"one of: {_AGE_GROUPS}")
        if "cashier" in filters:
            parser.add_argument("--cashier", help="one cashier id, e.g. S012-C03")
        if name == "segments":
            parser.add_argument("--by-store", action="store_true",
                                help="one block of rows per store instead of all together")
        if name == "quality":
            parser.add_argument("--by-lane", action="store_true",
                                help="one row per store and lane: frames, no-face rate, median "
                                "face size, worst lane first (a failing camera stands out)")
        if name == "recommendations":
            parser.add_argument("--kind", choices=("all", "category", "product"), default="all",
                                help="item kind (default: %(default)s)")
            parser.add_argument("--top", type=int, default=settings.top_n,
                                help="items per age group and kind (default: %(default)s, "
                                "setting top_n)")
            parser.add_argument(
                "--min-support", type=float, default=settings.min_support,
                help="lowest support over the range (default: %(default)s, setting min_support)")
        parser.set_defaults(handler=_query, query_name=name)

    report = subparsers.add_parser(
        "report", help="render reports for people (HTML)",
        description="Render the report tables of one day for people to read.",
    )
    formats = report.add_subparsers(dest="report", metavar="FORMAT", required=True)
    html = formats.add_parser(
        "html",
        help="one self-contained HTML file with charts for a day or a period",
        description="Write one self-contained HTML file (inline CSS and SVG, no network, no "
        "face images). For day --date: age distribution per store, category lift by age group, "
        "compliance by cashier, drift alarms, photos kept, run quality. For a period --from D1 "
        "--to D2 (or --date D --week-to-date: Monday to D): trends per day (per week beyond "
        "62 days), stores side by side, the cashiers with most flagged sales, the lift over the "
        "period, drift alarms; days without reports are listed. Written atomically.",
    )
    html.add_argument("--date", help="the day to report, YYYY-MM-DD")
    html.add_argument("--from", dest="date_from", metavar="DATE", help="first day of a period")
    html.add_argument("--to", dest="date_to", metavar="DATE",
                      help="last day of a period, inclusive")
    html.add_argument("--week-to-date", action="store_true",
                      help="with --date D: the period from D's Monday to D")
    html.add_argument("--root", default=settings.data_root,
                      help="data root, a path or s3a:// URI (default %(default)s)")
    html.add_argument("--out", help="output file (default: ROOT/html/report-DATE.html, "
                      "report-D1..D2.html for a period)")
    html.add_argument("--min-support", type=float, default=settings.min_support,
                      help="heatmap cells below this support are greyed (default: %(default)s)")
    html.set_defaults(handler=_report_html)


def _common_options(parser: argparse.ArgumentParser, default_root: str) -> None:
    parser.add_argument("--from", dest="date_from", required=True, metavar="DATE",
                        help="first day, YYYY-MM-DD")
    parser.add_argument("--to", dest="date_to", metavar="DATE",
                        help="last day, inclusive (default: the --from day)")
    parser.add_argument("--format", choices=tuple(query_format.RENDERERS), default="table",
                        help="output format (default: %(default)s)")
    parser.add_argument("--root", default=default_root,
                        help="data root, a directory or s3a:// URL (default: %(default)s)")
    parser.add_argument("--engine", choices=("duckdb", "spark"), default="duckdb",
                        help="duckdb (default, one machine, fast) or spark (for data that "
                        "outgrows one machine; starts a Spark session)")


def _query(args: argparse.Namespace) -> int:
    from jobs.analytics.query import make_filters

    filters = make_filters(
        args.date_from, args.date_to, store=getattr(args, "store", None),
        age_group=getattr(args, "age_group", None), cashier=getattr(args, "cashier", None),
    )
    options: dict = {}
    if args.query_name == "segments":
        options["by_store"] = args.by_store
    if args.query_name == "quality":
        options["by_lane"] = args.by_lane
    if args.query_name == "flags":  # "likely minor" tiers of p_under_legal_age (settings)
        settings = load_settings()
        options.update(likely_p=settings.likely_minor_p, possible_p=settings.possible_minor_p)
    if args.query_name == "recommendations":
        options.update(min_support=args.min_support, top_n=args.top,
                       kinds=("category", "product") if args.kind == "all" else (args.kind,))
    if args.engine == "spark":
        from jobs.analytics import query_spark

        result = query_spark.run(args.root, args.query_name, filters,
                                 master=load_settings().spark_master, **options)
    else:
        from jobs.analytics.query import DuckDBEngine, run_query

        result = run_query(DuckDBEngine(args.root), args.query_name, filters,
                           as_csv=args.format == "csv", **options)
    if args.format == "table":
        sys.stdout.write(f"{args.query_name}: {filters.describe()}\n")
    else:
        for note in result.notes:
            sys.stderr.write(f"note: {note}\n")
    sys.stdout.write(query_format.render(result, args.format))
    return 0


def _report_html(args: argparse.Namespace) -> int:
    import datetime as dt

    from jobs.analytics import html_report
    from jobs.analytics.query_sql import parse_date
    from model.errors import UserError

    period = args.date_from or args.date_to or args.week_to_date
    if args.date and (args.date_from or args.date_to):
        raise UserError("give --date D (one day) or --from D1 --to D2 (a period), not both")
    if not args.date and not args.date_from:
        raise UserError("give --date D (one day) or --from D1 --to D2 (a period)")
    if args.week_to_date and not args.date:
        raise UserError("--week-to-date needs --date D (the period is D's Monday to D)")
    if not period:
        path = html_report.write_report(args.root, args.date, args.out,
                                        min_support=args.min_support)
    else:
        if args.week_to_date:
            last = parse_date(args.date, "--date")
            first, last = (last - dt.timedelta(days=last.weekday())).isoformat(), args.date
        else:
            first, last = args.date_from, args.date_to or args.date_from
        path = html_report.write_period_report(args.root, first, last, args.out,
                                               min_support=args.min_support)
    sys.stdout.write(f"wrote {path}\n")
    return 0
