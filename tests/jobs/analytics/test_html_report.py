"""The daily HTML report: content, escaping, atomic write, and a real headless-Chromium render."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from chromium_page import CHROMIUM, visit
from report_samples import DAY1, DAY2, write_samples

from jobs.analytics import charts
from jobs.analytics.html_report import load_day, render_html, write_report
from jobs.analytics.query import DuckDBEngine
from model.errors import UserError

ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"  # the repo root's, gitignored


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_samples(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def page(root: Path) -> str:
    return render_html(load_day(DuckDBEngine(root), DAY1), min_support=0.01, source="test")


def _chromium() -> str:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium (make setup-test)")
    return CHROMIUM


def test_page_shows_the_days_figures(page):
    text = re.sub(r"<[^>]+>", " ", page)
    assert "Checkout age report: 2026-03-01" in page
    assert "Model <b>v0003</b>" in page and "challenge age <b>25</b>" in page
    assert "screening signal" in page
    # Day 1: 10 restricted sales, 7 with photo (4 + 0 + 3), 3 flagged -> 42.9 %.
    assert "10 restricted sales, 7 with a matched photo, 3 flagged (rate 42.9 %)" in text
    assert "2 flagged of 3 with photo" in page and "1 flagged of 4 with photo" in page
    # Lift, day 1, all stores: 65+ dairy 6*15 / (6*9) = 1.67; 18-24 snacks 7*15 / (9*9) = 1.30.
    assert re.search(r"65\+ / dairy: lift 1\.67", page)
    assert re.search(r"18-24 / snacks: lift 1\.30", page)
    # Age distribution: S001 has 1 x 18-24 and 2 x 65+ photos.
    assert "S001 65+: 2 photos (66.7 %)" in page
    # Run quality and quarantine reasons.
    assert "30 in: 20 matched, 7 unmatched, 3 quarantined" in page
    assert "Match rate 80.0 %" in page
    assert "unknown_product" in page and "not_an_image" in page
    assert "ph-0009" in page  # photo ids for auditors


def test_page_is_self_contained_escaped_and_free_of_images(page):
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # a hostile photo id, escaped
    assert "<script" not in page.lower()
    for banned in ("<img", "<image", "<link", "<iframe", "src=", "href=", "url(http", "@import"):
        assert banned not in page.lower(), banned
    urls = set(re.findall(r"https?://[^\s\"'<>]+", page))
    assert urls == {"http://www.w3.org/2000/svg"}  # the SVG namespace name only, never fetched
    assert "default-src 'none'" in page  # and the browser is told to fetch nothing


def test_write_report_default_path_atomic_rerun(root):
    first = write_report(root, DAY1)
    assert first == root / "html" / f"report-{DAY1}.html"
    before = first.read_text(encoding="utf-8")
    second = write_report(root, DAY1)
    assert second == first and first.read_text(encoding="utf-8") == before
    assert [p.name for p in first.parent.iterdir()] == [first.name]  # no temp files left
    custom = write_report(root, DAY2, root / "elsewhere" / "r.html")
    assert "Checkout age report: 2026-03-02" in custom.read_text(encoding="utf-8")


def test_day_without_reports_and_bad_date_are_user_errors(root):
    with pytest.raises(UserError, match="no run_quality data for 2026-03-09"):
        write_report(root, "2026-03-09")
    with pytest.raises(UserError, match="bad --from '2026-3-9'"):
        write_report(root, "2026-3-9")


def test_a_missing_table_leaves_its_section_explained(root, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(root / "reports", partial / "reports")
    shutil.rmtree(partial / "reports" / "compliance_flags")
    page = render_html(load_day(DuckDBEngine(partial), DAY1), min_support=0.01, source="x")
    assert "No data: no report data:" in page and "compliance_flags has no date=*" in page
    assert "1 flagged of 4 with photo" in page  # the other sections are still there


def test_report_renders_in_headless_chromium_without_errors(root):
    _chromium()
    path = write_report(root, DAY1)
    seen = visit(path)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"html-report-{DAY1}.png").write_bytes(seen.screenshot)
    assert seen.errors == []
    assert seen.requests == [path.resolve().as_uri()]  # nothing but the page itself
    assert seen.dom["title"] == f"Checkout age report {DAY1}"
    assert len(seen.dom["svgs"]) == 4 and all(w > 300 and h > 60 for w, h in seen.dom["svgs"])
    assert seen.dom["images"] == 0 and seen.dom["scripts"] == 0
    assert "A flag is a screening signal, not proof." in seen.dom["text"]
    assert seen.screenshot.startswith(b"\x89PNG") and len(seen.screenshot) > 20_000


def test_browser_check_catches_console_errors_exceptions_and_fetches(tmp_path):
    _chromium()
    broken = tmp_path / "broken.html"
    broken.write_text(
        "<!DOCTYPE html><html><head><title>broken</title>"
        '<script src="https://cdn.example.invalid/chart.js"></script></head><body>'
        "<script>console.error('chart failed'); undefinedFunction();</script></body></html>",
        encoding="utf-8",
    )
    seen = visit(broken, settle_s=1.0)
    assert any("console.error: chart failed" in e for e in seen.errors), seen.errors
    assert any("undefinedFunction is not defined" in e for e in seen.errors), seen.errors
    assert "https://cdn.example.invalid/chart.js" in seen.requests
    assert seen.dom["scripts"] == 2


def test_every_chart_escapes_the_text_it_is_given():
    hostile = '<script>alert("x")</script>'
    svgs = [
        charts.stacked_shares([(hostile, {hostile: 1})], [hostile], hostile),
        charts.heatmap([hostile], [hostile],
                       {(hostile, hostile): {"lift": 2.0, "muted": False, "tip": hostile}}, hostile),
        charts.rate_bars([(hostile, 0.5, hostile)], hostile, hostile),
        charts.stacked_counts([(hostile, [(hostile, 3, "#000")])], hostile),
    ]
    for svg in svgs:
        assert "<script" not in svg
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in svg
