"""Reading a face set's `labels.csv` without ever losing a row.

Each physical line after the header is one data row. A line that is not valid CSV or
UTF-8, or has the wrong number of fields, is returned as a rejected row with a reason
instead of stopping the run; blank lines are not rows. Missing file or missing required
columns are the user's to fix and raise `UserError` naming the file.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pandas as pd

from model.errors import UserError

LABELS_FILE = "labels.csv"
IMAGES_DIR = "final_files"
REQUIRED_COLUMNS = ("file_name", "real_age")
MALFORMED_ROW = "malformed_row"

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_SURROGATE = re.compile("[\udc80-\udcff]")


def _split_line(line: str) -> list[str]:
    return next(csv.reader([line], strict=True))


def load_labels(faces_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Parse `faces_dir/labels.csv` into (rows, malformed).

    Returns:
        rows: one row per well-formed data row, all values as stripped strings:
            `row` (1-based data-row number), `file_name`, `real_age` and any extra columns.
        malformed: `row`, `file_name` (best effort), `reason` (`malformed_row`), `detail`.
    """
    path = Path(faces_dir) / LABELS_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: labels file not found") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read labels file ({exc.strerror})") from None
    lines = _LINE_BREAK.split(raw.decode("utf-8-sig", errors="surrogateescape"))
    lines = [line for line in lines if line.strip()]
    if not lines:
        raise UserError(f"{path}: labels file is empty (expected a header with file_name,real_age)")
    try:
        header = [name.strip() for name in _split_line(lines[0])]
    except csv.Error as exc:
        raise UserError(f"{path}: header line is not valid CSV ({exc})") from None
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if missing:
        raise UserError(
            f"{path}: missing required column(s) {', '.join(missing)}; found {', '.join(header)}"
        )
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise UserError(f"{path}: column(s) named more than once: {', '.join(repeated)}")

    records: list[list[str]] = []
    malformed: list[dict[str, object]] = []
    for number, line in enumerate(lines[1:], start=1):
        problem = None
        fields: list[str] = []
        if _SURROGATE.search(line):
            problem = "line is not valid UTF-8"
        else:
            try:
                fields = [value.strip() for value in _split_line(line)]
            except csv.Error as exc:
                problem = f"line is not valid CSV ({exc})"
            if problem is None and len(fields) != len(header):
                problem = f"line has {len(fields)} fields, the header has {len(header)}"
        if problem is None:
            records.append([str(number), *fields])
        else:
            first = line.split(",", 1)[0].strip().strip('"')
            malformed.append(
                {
                    "row": number,
                    "file_name": _SURROGATE.sub("\ufffd", first),
                    "reason": MALFORMED_ROW,
                    "detail": f"{problem}: {_SURROGATE.sub('?', line)[:120]!r}",
                }
            )
    rows = pd.DataFrame(records, columns=["row", *header], dtype=str)
    rows["row"] = rows["row"].astype(int)
    return rows, pd.DataFrame(malformed, columns=["row", "file_name", "reason", "detail"])
