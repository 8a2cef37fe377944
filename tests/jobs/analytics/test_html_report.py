"""The daily HTML report: content, escaping, atomic write, and a real headless-Chromium render."""

from __future__ import annotations

import dataclasses
import html
import re
import shutil
from pathlib import Path

import pytest
from chromium_page import CHROMIUM, visit
from report_samples import DAY1, DAY2, write_samples

from jobs.analytics import charts
from jobs.analytics.html_report import load_day, render_html, write_report
from jobs.analytics.query import DuckDBEngine
from model.config import Settings
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


def _text(page: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", page).split())


def test_page_shows_minor_tiers_and_expected_sales_to_minors(page):
    text = _text(page)
    # Day 1: expected 0.9 + 0.79 (S001-C02's NULL ignored) over 4 + 0 + 3 sales with a p.
    assert "1.69 expected sales to minors over 7 sales with a probability" in text
    assert re.search(r"S002 S002-C01 3 3 2 0\.6667 0\.79 3 26\.3 % 0", text)
    # Flags most likely first, tiers at the default 50 % / 20 %: 0.72, 0.31, 0.04.
    tiers = re.findall(r'<td[^>]*><span class="badge (tier-[\w-]+)">', page)
    assert tiers == ["tier-likely-minor", "tier-possible-minor", "tier-probably-adult"]
    assert "likely minor p ≥ 50.0 % (1) · possible minor 20.0 % ≤ p &lt; 50.0 % (1)" in text
    assert "probably adult p &lt; 20.0 % (1) · no calibration no probability (0)" in text
    assert re.search(r"likely minor 72\.0 % 16\.0 R-20260301-S002-000007", text)
    assert "no probability (model without calibration)" not in text  # every flag has one


def test_page_shows_the_no_face_rate_per_store_and_lane(page, root):
    grid = re.search(r'<table class="lanes">.*?</table>', page, re.S).group(0)
    # S001 lane 1: 1 no_face of 4 frames; lane 2: 2 of 2 (above the 50 % ceiling); S002 lane 1:
    # 0 of 1; S002 lane 2 sent no frames. S002's crops are not frames.
    cells = re.findall(r'<td class="n( hot)?" title="([^"]*)">([^<]*)</td>', grid)
    assert [(hot, value) for hot, _, value in cells] == [
        ("", "25.0 %"), (" hot", "100.0 %"), ("", "0.0 %"), ("", "n/a")]
    assert "S001 lane 1: 1 no face of 4 frames, 0 face too small, median face 150 px" in grid
    assert "No-face rate 42.9 %, median face width 135 px" in page
    day2 = render_html(load_day(DuckDBEngine(root), DAY2), min_support=0.01, source="t")
    assert '<table class="lanes">' not in day2 and "n/a: no camera frames this day" in day2
    assert "No-face rate n/a, median face width n/a" in day2
    strict = render_html(load_day(DuckDBEngine(root), DAY1), min_support=0.01, source="t",
                         max_no_face_rate=0.2)
    assert strict.count('class="n hot"') == 2 and "2 lanes above 20.0 %" in strict


def test_page_says_when_probabilities_are_missing(root, page):
    assert "flags have no probability" not in page and "no calibration table" not in page
    day2 = _text(render_html(load_day(DuckDBEngine(root), DAY2), min_support=0.01, source="t"))
    assert "1 of 2 flags have no probability (model without calibration)." in day2
    assert "0.13 expected sales to minors over 2 sales with a probability" in day2
    # An uncalibrated model: no flag has a probability and no sale has one.
    data = load_day(DuckDBEngine(root), DAY1)
    uncalibrated = dataclasses.replace(
        data, flags=[{**f, "p_under_legal_age": None, "minor_tier": "no calibration"}
                     for f in data.flags],
        compliance=[{**c, "with_probability": 0, "expected_minor_sales": None,
                     "expected_minor_share": None} for c in data.compliance])
    text = _text(render_html(uncalibrated, min_support=0.01, source="t"))
    assert ("Model v0003 has no calibration table: probabilities and expected counts are "
            "unavailable; flags are Challenge-25 only (`checkout-age model calibrate`).") in text
    assert "n/a expected sales to minors over 0 sales with a probability" in text
    assert "no calibration no probability (3)" in text
    for shown in (day2, text):
        assert "A flag is a screening signal, not proof." in shown


def test_page_states_the_policy_in_force_and_its_cost(root, page, tmp_path):
    text = html.unescape(_text(page))
    assert ("Policy in force: Challenge 25: an age-restricted sale is flagged when the "
            "customer's estimated age is below 25 (legal age 18).") in text
    # write_report looks the day's model (v0003) up in the settings' registry: here an empty one.
    settings = dataclasses.replace(Settings(), registry_root=tmp_path / "registry",
                                   challenge_age=21)
    text = html.unescape(_text(write_report(root, DAY1, tmp_path / "p.html", settings=settings)
                               .read_text(encoding="utf-8")))
    assert "Policy in force: Challenge 25" in text  # the rule the day was flagged with
    assert "What this rule costs is not known: model v0003 is not in the registry" in text
    assert "The setting is now Challenge 21: days scored from now on are flagged with it." in text


def test_tier_thresholds_come_from_settings(root, tmp_path):
    settings = dataclasses.replace(Settings(), likely_minor_p=0.3, possible_minor_p=0.1)
    text = _text(write_report(root, DAY1, tmp_path / "r.html", settings=settings)
                 .read_text(encoding="utf-8"))
    assert "likely minor p ≥ 30.0 % (2) · possible minor 10.0 % ≤ p &lt; 30.0 % (0)" in text


def test_page_is_self_contained_escaped_and_free_of_images(page, root):
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # a hostile photo id, escaped
    hostile = "<b onclick=x>S9</b>"  # a hostile store id in the no-face grid and a tier badge
    data = dataclasses.replace(load_day(DuckDBEngine(root), DAY1), lanes=[
        {"store_id": hostile, "lane_id": 1, "frames": 2, "frames_scored": 1, "no_face": 1,
         "face_too_small": 0, "no_face_rate": 0.5, "median_face_px": None}])
    data.flags[0]["minor_tier"] = hostile
    hostile_page = render_html(data, min_support=0.01, source="t")
    assert "<b onclick" not in hostile_page
    assert hostile_page.count("&lt;b onclick=x&gt;S9&lt;/b&gt;") >= 3  # row, tooltip, badge
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
