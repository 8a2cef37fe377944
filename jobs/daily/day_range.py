"""Several days in one Spark application: the score job's `--date D1 --to D2`.

A backfill (the days that landed while the pipeline was down, a new store's history) run as one
application pays the JVM, the Spark session, the model's resolution and the Python workers'
start-up (imports, the artifact compiled) once, not once a day: on a 1,200-photo day that
fixed part is about half of the wall time (docs/serving.md). Every day is still its own
unit: its own lock, its own partitions replaced atomically, its own counts; a day that cannot
run (no complete landing, photos already purged or minimised) is reported with why and the
others go on.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from jobs.contract import parse_date
from model.errors import UserError

log = logging.getLogger(__name__)

MAX_DAYS = 366  # one run at most a year: a longer range is more likely a typo than a plan


def day_range(first: str, last: str | None, max_days: int = MAX_DAYS) -> list[str]:
    """Every `YYYY-MM-DD` from `first` to `last` inclusive (`[first]` when `last` is None).

    Raises `UserError` naming the flag when a date is not a calendar date, `last` comes before
    `first`, or the range is longer than `max_days`.
    """
    start = parse_date(first)
    if last is None:
        return [start.isoformat()]
    end = parse_date(last)
    if end < start:
        raise UserError(f"--to {last} is before --date {first}")
    days = (end - start).days + 1
    if days > max_days:
        raise UserError(f"--date {first} --to {last} is {days} days; at most {max_days} in one "
                        "run: split the range")
    return [(start + dt.timedelta(days=offset)).isoformat() for offset in range(days)]


def run_days(days: list[str], run_day: Callable[[str], dict]) -> dict:
    """`run_day(day)` for each day in order; what the job reports.

    One day (no `--to`): `run_day`'s own result, its `UserError` raised, as a one-day job has
    always done. Several: a day whose `run_day` raises `UserError` is logged and listed under `failed` with the error,
    and the next day runs: one bad day does not cost the rest of a backfill. Any other error
    (Spark itself failing) stops the run, as it would a single day.

    Returns:
        A range's `{"date_from", "date_to", "days": [each day's result], "failed": [{"date",
        "error"}]}`.
    """
    if len(days) == 1:
        return run_day(days[0])
    done: list[dict] = []
    failed: list[dict] = []
    for day in days:
        try:
            done.append(run_day(day))
        except UserError as exc:
            log.error("%s not done: %s", day, exc)
            failed.append({"date": day, "error": str(exc)})
    return {"date_from": days[0], "date_to": days[-1], "days": done, "failed": failed}
