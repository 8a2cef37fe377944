"""The period HTML report over the hand-made sample days: figures worked out by hand, missing
days listed, bad ranges refused, weekly trends for long ranges, and a real Chromium render."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from chromium_page import CHROMIUM, visit
from report_samples import DAY1, DAY2, write_samples

from jobs.analytics import rollups
from jobs.analytics.html_report import write_period_report
from jobs.analytics.period_report import load_period, render_period, trend_rows
from jobs.analytics.query import DuckDBEngine, make_filters
from jobs.cli.main import main
from jobs.contract import MINIMISED_MARKER, TABLES
from model.errors import UserError

COPY = "2026-03-04"  # a copy of DAY1; 2026-03-03 has no reports at all


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = write_samples(tmp_path_factory.mktemp("data"))
    for table in TABLES:
        src = data / "reports" / table / f"date={DAY1}"
        if src.exists():
            shutil.copytree(src, data / "reports" / table / f"date={COPY}")
    return data


def _text(page: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", page).split())


@pytest.fixture(scope="module")
def page(root: Path) -> str:
    data = load_period(DuckDBEngine(root), make_filters(DAY1, COPY))
    return render_period(data, min_support=0.01, source="test")


def test_the_period_page_shows_the_periods_figures(page):
    text = _text(page)
    assert "Checkout age report: 2026-03-01 to 2026-03-04" in page
    assert "1 day of the period has no reports (not counted in any figure): 2026-03-03." in text
    assert "3 of 4 days with reports" in text
    # Flags per day: D1 1 + 0 + 2 of 4 + 0 + 3 with photo; D2 2 + 0 of 2 + 1; the copy as D1.
    assert "Flag rate per day" in page
    assert "2026-03-01: 3 of 7 with photo" in page and "2026-03-02: 2 of 3 with photo" in page
    assert "8 flagged" in text  # 3 + 2 + 3
    # Receipts valid 25 + 16 + 25 = 66, matched 20 + 14 + 20 = 54: 81.8 %.
    assert "66 valid receipts" in text and "81.8 % receipts matched to a photo" in text
    # Top cashiers: S001-C01 1 + 2 + 1 = 4 flagged of 4 + 2 + 4 = 10 with photo; S002-C01
    # 2 + 0 + 2 = 4 of 3 + 1 + 3 = 7.
    assert re.search(r"S001 S001-C01 4 10 40\.0 % .* 3 S002 S002-C01 4 7 57\.1 %", text)


def test_the_stores_stand_side_by_side(page):
    text = _text(page)
    # Matched receipts: S001 10 + 8 + 10 = 28 (18-24: 4 + 2 + 4 = 10 -> 35.7 %); S002 5 + 5.
    # Restricted 5 + 2 + 3 + 5 + 2 = 17 ... with photo 4 + 2 + 4 = 10, flagged 1 + 2 + 1.
    assert re.search(r"S001 28 0\.0 % 35\.7 % (0\.0 % ){4}64\.3 % 17 10 4 40\.0 % 1\.92", text)
    # S002: restricted 3 + 1 + 3, with photo 3 + 1 + 3, flagged 2 + 0 + 2; expected 0.79 + 0.01
    # + 0.79.
    assert re.search(r"S002 10 0\.0 % 100\.0 % (0\.0 % ){5}7 7 4 57\.1 % 1\.59", text)


def test_the_lift_is_over_the_whole_period(page):
    # 65+ dairy: 6 + 6 + 6 receipts of segment 6 + 6 + 6 = 18; dairy 9 + 6 + 9 = 24 of 15 + 8 +
    # 15 = 38 receipts: lift 1 / (24 / 38) = 1.58.
    assert re.search(r"65\+ / dairy: lift 1\.58", page)


def test_long_ranges_trend_per_week(root):
    data = load_period(DuckDBEngine(root), make_filters("2026-02-01", "2026-05-31"))
    grain, rows = trend_rows(data)
    assert grain == "week (from Monday)"
    # 2026-03-01 is a Sunday (week of 2026-02-23); 03-02 and 03-04 share the next week.
    assert [(r["period"], r["days"], r["flagged"]) for r in rows] == [
        ("2026-02-23", 1, 3), ("2026-03-02", 2, 5)]
    assert len(data.missing_days) == 120 - 3


@pytest.mark.parametrize(("args", "message"), [
    (["--from", "2026-03-04", "--to", "2026-03-01"], "--to 2026-03-01 is before --from"),
    (["--from", "2027-01-01", "--to", "2027-01-31"], "no run_quality data for 2027-01-01"),
    (["--from", "2026-13-01"], "bad --from '2026-13-01'"),
    (["--date", DAY1, "--from", DAY1], "not both"),
    (["--from", DAY1, "--week-to-date"], "--week-to-date needs --date"),
])
def test_bad_ranges_are_refused_with_a_reason(root, capsys, args, message):
    assert main(["report", "html", "--root", str(root), *args]) == 2
    assert message in capsys.readouterr().err


def test_week_to_date_runs_from_monday(root, capsys):
    assert main(["report", "html", "--root", str(root), "--date", COPY, "--week-to-date"]) == 0
    path = root / "html" / "report-2026-03-02..2026-03-04.html"
    assert capsys.readouterr().out == f"wrote {path}\n"
    text = _text(path.read_text(encoding="utf-8"))
    assert "1 day of the period has no reports (not counted in any figure): 2026-03-03." in text


def test_the_period_reads_rollups_and_gives_the_same_page(root, tmp_path):
    plain = write_period_report(root, "2026-03-01", "2026-03-31", tmp_path / "days.html")
    rollups.refresh(str(root), *make_filters("2026-03-01", "2026-03-31").span)
    rolled = write_period_report(root, "2026-03-01", "2026-03-31", tmp_path / "rollups.html")
    assert rolled.read_text(encoding="utf-8") == plain.read_text(encoding="utf-8")
    shutil.rmtree(root / "rollups")


def test_the_daily_page_says_which_photos_were_kept(root, tmp_path):
    from jobs.analytics.html_report import write_report

    text = _text(write_report(root, DAY1, tmp_path / "a.html").read_text(encoding="utf-8"))
    assert "Photos not minimised (setting photo_minimisation off, or not run yet)" in text
    landing = root / "landing" / f"date={DAY1}"
    landing.mkdir(parents=True)
    (landing / MINIMISED_MARKER).write_text(json.dumps(
        {"kept": 3, "deleted": 27, "keep_until": "2026-03-31"}))
    text = _text(write_report(root, DAY1, tmp_path / "b.html").read_text(encoding="utf-8"))
    assert ("Photo minimisation kept 3 photos (each the photo of a flagged restricted sale "
            "(compliance_flags), kept for the audit window, until 2026-03-31) and deleted 27 "
            "(not tied to a flagged restricted sale).") in text
    shutil.rmtree(landing)


def test_the_period_page_renders_in_headless_chromium(root):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium (make setup-test)")
    path = write_period_report(root, DAY1, COPY)
    seen = visit(path)
    assert seen.errors == []
    assert seen.requests == [path.resolve().as_uri()]
    assert seen.dom["title"] == f"Checkout age report {DAY1} to {COPY}"
    # Age mix, flag rate, match rate, no-face rate per day, stores, lift.
    assert len(seen.dom["svgs"]) == 6 and all(w > 300 and h > 40 for w, h in seen.dom["svgs"])
    assert seen.dom["images"] == 0 and seen.dom["scripts"] == 0
    assert "2026-03-03" in seen.dom["text"]


def test_a_period_without_any_reports_is_a_user_error(tmp_path):
    (tmp_path / "reports" / "run_quality").mkdir(parents=True)
    with pytest.raises(UserError):
        write_period_report(tmp_path, DAY1, DAY2)
