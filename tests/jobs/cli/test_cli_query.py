"""`checkout-age query ...` and `checkout-age report html` through the real command line."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from report_samples import DAY1, DAY2, write_samples

from jobs.cli.main import main


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_samples(tmp_path_factory.mktemp("data"))


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_segments_csv(root, capsys):
    code, out, _ = _run(capsys, "query", "segments", "--from", DAY1, "--to", DAY2,
                        "--root", str(root), "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    snacks = next(r for r in rows if (r["age_group"], r["category"]) == ("18-24", "snacks"))
    assert (snacks["receipts"], snacks["all_receipts"], snacks["segment_receipts"]) == (
        "9", "23", "11")
    assert float(snacks["lift"]) == pytest.approx(207 / 121)


def test_compliance_json_keeps_null_flag_rate(root, capsys):
    code, out, _ = _run(capsys, "query", "compliance", "--from", DAY1, "--to", DAY2,
                        "--store", "S001", "--root", str(root), "--format", "json")
    assert code == 0
    records = json.loads(out)
    assert [(r["cashier_id"], r["flagged"], r["flag_rate"]) for r in records] == [
        ("S001-C01", 3, 0.5), ("S001-C02", 0, None)]


def test_flags_json_has_utc_timestamps(root, capsys):
    code, out, _ = _run(capsys, "query", "flags", "--from", DAY2, "--root", str(root),
                        "--format", "json")
    assert code == 0
    assert [r["closed_at"] for r in json.loads(out)] == ["2026-03-02T08:00:00.000Z",
                                                         "2026-03-02T18:45:10.000Z"]


def test_quality_table_has_caption_rows_total_and_note(root, capsys):
    code, out, _ = _run(capsys, "query", "quality", "--from", DAY1, "--to", DAY2,
                        "--root", str(root))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "quality: 2026-03-01..2026-03-02"
    total = next(line for line in lines if line.startswith("total"))
    assert total.split()[:4] == ["total", "50", "47", "3"] and "0.8293" in total
    assert lines[-1] == "(3 rows)"
    assert any(line.startswith("note: total row") for line in lines)


def test_recommendations_table_and_note_on_stderr_for_csv(root, capsys):
    code, out, err = _run(capsys, "query", "recommendations", "--from", DAY1, "--to", DAY2,
                          "--root", str(root), "--kind", "product", "--top", "1",
                          "--format", "csv")
    assert code == 0
    assert [r["item_id"] for r in csv.DictReader(io.StringIO(out))] == ["P002", "P003"]
    assert "pool the days" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["segments", "--from", "2026-02-30"], "bad --from '2026-02-30'"),
        (["segments", "--from", DAY2, "--to", DAY1], "--to 2026-03-01 is before --from"),
        (["segments", "--from", "2026-05-01"], "no segment_category data for 2026-05-01"),
        (["segments", "--from", DAY1, "--store", "S404"], "unknown store 'S404'"),
        (["segments", "--from", DAY1, "--age-group", "teens"], "unknown age group 'teens'"),
        (["compliance", "--from", DAY1, "--cashier", "S001-C77"], "unknown cashier 'S001-C77'"),
        (["recommendations", "--from", DAY1, "--top", "0"], "--top must be at least 1"),
    ],
)
def test_user_errors_are_one_line_exit_2(root, capsys, argv, message):
    code, out, err = _run(capsys, "query", *argv, "--root", str(root))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("checkout-age: error: ") and message in err


def test_root_that_is_not_a_directory(tmp_path, capsys):
    code, _, err = _run(capsys, "query", "quality", "--from", DAY1, "--root",
                        str(tmp_path / "nope"))
    assert code == 2 and "is not a directory" in err


def test_options_of_other_queries_are_rejected(root, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["query", "segments", "--from", DAY1, "--cashier", "S001-C01", "--root", str(root)])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --cashier" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["query"], ["query", "segments"], ["report", "html"]])
def test_every_level_has_help(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    assert exit_info.value.code == 0
    assert "usage: checkout-age" in capsys.readouterr().out


def test_report_html_default_path(root, capsys):
    code, out, _ = _run(capsys, "report", "html", "--date", DAY2, "--root", str(root))
    target = root / "html" / f"report-{DAY2}.html"
    assert code == 0 and out == f"wrote {target}\n"
    assert "Checkout age report: 2026-03-02" in target.read_text(encoding="utf-8")


def test_whole_process_exit_codes_and_no_traceback(root):
    command = [sys.executable, "-m", "jobs.cli.main", "query"]
    ok = subprocess.run([*command, "compliance", "--from", DAY1, "--root", str(root)],
                        capture_output=True, text=True, check=False)
    assert ok.returncode == 0 and "S002-C01" in ok.stdout
    bad = subprocess.run([*command, "compliance", "--from", DAY1, "--store", "S001",
                          "--cashier", "S002-C01", "--root", str(root)],
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 2
    assert bad.stderr == "checkout-age: error: cashier S002-C01 never worked in store S001\n"


def test_quality_by_lane_shows_the_no_face_rate_worst_lane_first(root, capsys):
    code, out, _ = _run(capsys, "query", "quality", "--by-lane", "--from", DAY1, "--to", DAY2,
                        "--root", str(root), "--format", "json")
    assert code == 0
    rows = json.loads(out)
    assert rows and {"store_id", "lane_id", "frames", "no_face_rate"} <= set(rows[0])
    rates = [row["no_face_rate"] for row in rows]
    assert rates == sorted(rates, reverse=True)  # a failing camera is at the top
    assert all(row["no_face"] <= row["frames"] for row in rows)
    assert rates[0] > 0 and not any(row["store_id"] == "total" for row in rows)
