"""The daily Spark jobs' command-line flags, each declared once.

`jobs/daily/score_photos.py` and `jobs/daily/reports.py` parse these when spark-submit (or
Airflow's SparkSubmitOperator) runs them; `checkout-age score | reports` (`jobs/cli/daily.py`)
adds the very same flags and forwards what it parsed to the job (`job_argv`). Defaults come from
`Settings`. Only argparse is imported here, so `checkout-age --help` stays instant.
"""

from __future__ import annotations

import argparse

from model.config import Settings
from model.lifecycle.registry import PRODUCTION

JOB_SERVER_PORT = 15050  # `checkout-age job-server`'s default port


def add_day_arguments(parser: argparse.ArgumentParser, data_root: str, what: str) -> None:
    """`--date` and `--root`: the day a job or command works on, and where its data lives."""
    parser.add_argument("--date", required=True, help=f"day to {what}, YYYY-MM-DD")
    parser.add_argument("--root", default=data_root,
                        help="data root, a path or s3a:// URI (default %(default)s)")


def job_arg_parser(prog: str, description: str, what: str,
                   data_root: str) -> argparse.ArgumentParser:
    """The arguments every spark-submit application of ours takes (`--date`, `--root`, ...)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_day_arguments(parser, data_root, what)
    parser.add_argument("--master", default=None, help="Spark master when run without spark-submit")
    parser.add_argument("--result-json", default=None, help="also write the result JSON here")
    return parser


def add_range_argument(parser: argparse.ArgumentParser, what: str) -> argparse.Action:
    """`--to`: the last day of a range run (`jobs.daily.day_range`)."""
    return parser.add_argument(
        "--to", dest="date_to", metavar="DATE", default=None,
        help=f"last day of a range: {what} every day from --date to this one in one Spark "
        "application, which starts once (a backfill); a day that cannot run is reported and "
        "the others go on")


def add_score_arguments(parser: argparse.ArgumentParser,
                        settings: Settings) -> list[argparse.Action]:
    """Flags of job 1, `score_photos.py` (beyond the day's); returns them for `job_argv`."""
    return [
        add_range_argument(parser, "score"),
        parser.add_argument("--registry", default=str(settings.registry_store),
                            help="model registry root (default %(default)s)"),
        parser.add_argument("--model", default=PRODUCTION,
                            help="'production' (default), a version id (v0003) or a .keras path"),
        parser.add_argument("--batch-size", type=int, default=settings.score_batch_size,
                            help="images per model call (default %(default)s)"),
        parser.add_argument("--partitions", type=int, default=None,
                            help="scoring tasks (default: one per core with a serving artifact, else "
                                 "half of Spark's default parallelism)"),
    ]


def add_reports_arguments(parser: argparse.ArgumentParser,
                          settings: Settings) -> list[argparse.Action]:
    """Flags of job 2, `reports.py` (beyond the day's); returns them for `job_argv`."""
    return [
        add_range_argument(parser, "report"),
        parser.add_argument("--match-window-s", type=int, default=settings.match_window_s,
                            help="largest |photo time - receipt time| to match "
                            "(default %(default)s)"),
        parser.add_argument("--challenge-age", type=int, default=settings.challenge_age,
                            help="flag restricted sales to faces predicted younger "
                            "(default %(default)s)"),
        parser.add_argument("--min-support", type=float, default=settings.min_support,
                            help="minimum support of a recommendation (default %(default)s)"),
        parser.add_argument("--top-n", type=int, default=settings.top_n,
                            help="recommendations per age group and kind (default %(default)s)"),
    ]


def job_argv(actions: list[argparse.Action], args: argparse.Namespace) -> list[str]:
    """`actions`' flags with their values in `args`, as a job's argv (unset optionals left out)."""
    argv: list[str] = []
    for action in actions:
        value = getattr(args, action.dest)
        if value is not None:
            argv += [action.option_strings[0], str(value)]
    return argv
