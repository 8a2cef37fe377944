"""Render a query `Result` as an aligned text table, CSV or JSON (no pandas: the CLI stays fast)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobs.analytics.query import Result

_RATIOS = {"support", "confidence", "lift", "revenue_share", "flag_rate", "match_rate"}


def plain(value: Any) -> Any:
    """A JSON/CSV-friendly value: ISO dates, UTC `...Z` timestamps, NaN as None."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.isoformat(timespec="milliseconds") + "Z"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):  # numpy/decimal scalars from an engine
        return value.item()
    return value


def cell(column: str, value: Any) -> str:
    """One table cell: ratios to 4 decimals, roubles to kopecks, ages to 0.1 year."""
    value = plain(value)
    if value is None:
        return "-"
    if isinstance(value, float):
        if column in _RATIOS:
            return f"{value:.4f}"
        if column.endswith("_rub"):
            return f"{value:,.2f}"
        if column.startswith("age_pred"):
            return f"{value:.1f}"
        return f"{value:g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}" if column not in ("lane_id", "rank", "challenge_age") else str(value)
    return str(value)


def to_table(result: Result) -> str:
    """Columns aligned (numbers right, text left), notes below, `(N rows)` last."""
    cells = [[cell(c, v) for c, v in zip(result.columns, row, strict=True)]
             for row in result.rows]
    numeric = [
        all(isinstance(plain(row[i]), int | float) or row[i] is None for row in result.rows)
        and any(row[i] is not None for row in result.rows)
        for i in range(len(result.columns))
    ]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(result.columns)]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if n else v.ljust(w)
                         for v, w, n in zip(values, widths, numeric, strict=True)).rstrip()

    out = [line(list(result.columns)), line(["-" * w for w in widths])]
    out += [line(r) for r in cells]
    out += [f"note: {note}" for note in result.notes]
    out.append(f"({len(result.rows)} row{'s' if len(result.rows) != 1 else ''})")
    return "\n".join(out) + "\n"


_AS_THEY_ARE = frozenset({str, int})  # CSV writes these (and non-NaN floats) unchanged


def _csv_field(value: Any) -> Any:
    value = plain(value)
    return "" if value is None else value


def _quirk(value: Any) -> bool:
    """A string Python's csv module would leave bare but DuckDB's writer quotes: empty (so it
    differs from NULL) or holding a carriage return."""
    return type(value) is str and (not value or "\r" in value)


def _quoted_line(row: tuple) -> str:
    fields = []
    for value in row:
        value = plain(value)
        if value is None:  # NULL: an empty field, bare
            fields.append("")
            continue
        text = value if type(value) is str else repr(value) if type(value) is float else str(value)
        if type(value) is str and (not text or any(c in text for c in ',"\n\r')):
            text = '"' + text.replace('"', '""') + '"'
        fields.append(text)
    return ",".join(fields) + "\n"


def to_csv(result: Result) -> str:
    """RFC 4180 CSV with a header row; NULL as an empty field, an empty string as `""`.

    The same bytes as DuckDB's own writer (`DuckDBEngine.run_csv`, whose text is returned as
    it is), so an answer reads the same whichever engine or path produced it.
    """
    if result.csv is not None:
        return result.csv
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(result.columns)
    rows = result.rows
    if any(_quirk(value) for row in rows for value in row):
        for row in rows:
            buffer.write(_quoted_line(row))
        return buffer.getvalue()
    # A year by store is 73,000 rows x 16 columns: one type check per cell, not two calls.
    writer.writerows([v if type(v) in _AS_THEY_ARE or (type(v) is float and v == v)
                      else _csv_field(v) for v in row] for row in rows)
    return buffer.getvalue()


def to_json(result: Result) -> str:
    """A JSON array of row objects (NULL as null)."""
    records = [{c: plain(v) for c, v in zip(result.columns, row, strict=True)}
               for row in result.rows]
    return json.dumps(records, ensure_ascii=False) + "\n"


# Output formats of `checkout-age query --format` (the CLI's choices), by name.
RENDERERS = {"table": to_table, "csv": to_csv, "json": to_json}


def render(result: Result, fmt: str) -> str:
    """`result` in format `fmt` (a key of RENDERERS)."""
    return RENDERERS[fmt](result)
