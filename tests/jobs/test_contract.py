"""The data contract holds: what the Spark jobs really write, `jobs/contract.py` and
`docs/data-contract.md` name the same tables with the same columns and types."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from daily_run import REPORTED_DAY

from jobs import contract

DOC = Path(__file__).resolve().parents[2] / "docs" / "data-contract.md"
# The doc's type words, as Arrow types (Spark writes INT as int32, TIMESTAMP as UTC microseconds).
DOC_TYPES = {"STRING": pa.string(), "INT": pa.int32(), "BIGINT": pa.int64(),
             "DOUBLE": pa.float64(), "TIMESTAMP": pa.timestamp("us", tz="UTC"),
             "BOOLEAN": pa.bool_()}


def _fields(schema: pa.Schema) -> list[tuple[str, pa.DataType]]:
    return [(field.name, field.type) for field in schema]


# -- what the jobs write -----------------------------------------------------------------------


@pytest.mark.slow
def test_the_jobs_write_every_contract_table_and_nothing_else(reported_day):
    written = {path.name for path in (reported_day.root / "reports").iterdir()}
    assert written == set(contract.TABLES)


@pytest.mark.slow
@pytest.mark.parametrize("table", contract.TABLES)
def test_a_written_table_has_the_contract_columns_and_types(reported_day, table):
    partition = Path(contract.partition_dir(str(reported_day.root), table, REPORTED_DAY))
    files = sorted(partition.glob("*.parquet"))
    assert files, f"{table}: no Parquet file in {partition}"
    for path in files:
        assert _fields(pq.read_schema(path)) == _fields(contract.SCHEMAS[table]), path.name


# -- what the doc says -------------------------------------------------------------------------


def _doc_tables(text: str) -> dict[str, list[tuple[str, str | None]]]:
    """`{table: [(column, DOC TYPE or None), ...]}` from the doc's "Report tables" section.

    A table starts at a line `**name**: ...`; its columns are the first cells of the markdown
    table that follows (`a, b | TYPE | ...` names several columns of one type) or, for short
    tables, a ``Columns: `a STRING, b INT N, c` `` sentence (a type may be left out).
    """
    section = text.split("\n## Report tables", 1)[1].split("\n## ", 1)[0]
    tables: dict[str, list[tuple[str, str | None]]] = {}
    for block in re.split(r"^(?=\*\*\w+\*\*:)", section, flags=re.M)[1:]:
        name = re.match(r"\*\*(\w+)\*\*", block).group(1)
        rows = re.findall(r"^\|([^|\n]*)\|([^|\n]*)\|", block, flags=re.M)
        if rows:
            cells = [(names, kind.strip() or None) for names, kind in rows
                     if names.strip() not in ("column", "") and not set(names.strip()) <= {"-"}]
        else:
            listed = re.search(r"Columns: `([^`]*)`", block)
            assert listed, f"{name}: neither a column table nor a `Columns:` list"
            cells = [(item.split()[0], " ".join(item.split()[1:]) or None)
                     for item in listed.group(1).split(",")]
        tables[name] = [(column.strip(), kind.split()[0] if kind else None)
                        for names, kind in cells for column in names.split(",")]
    return tables


def test_the_doc_parser_reads_both_forms():
    text = ("# x\n## Report tables (output)\n\n**one**: rows.\n\n| column | type | meaning |\n"
            "|---|---|---|\n| a, b | BIGINT | both |\n| c | STRING N | |\n\n"
            "**two**: more.\nColumns: `d STRING, e INT N,\nf`.\n\n## Reruns\n**three**: no.\n")
    assert _doc_tables(text) == {
        "one": [("a", "BIGINT"), ("b", "BIGINT"), ("c", "STRING")],
        "two": [("d", "STRING"), ("e", "INT"), ("f", None)],
    }


def test_the_doc_lists_exactly_the_contract_tables_and_columns():
    documented = _doc_tables(DOC.read_text(encoding="utf-8"))
    assert set(documented) == set(contract.SCHEMAS)
    for table, schema in contract.SCHEMAS.items():
        assert [column for column, _ in documented[table]] == schema.names, table
        for column, kind in documented[table]:
            if kind is not None:  # a type the doc states must be the contract's
                assert DOC_TYPES[kind] == schema.field(column).type, f"{table}.{column}: {kind}"
