"""Parent mapping for migrations: the source CRM's owner id -> the destination's owner id.

The user supplies it as a CSV file with a ``source_parent_id,target_parent_id`` header
(other columns are ignored), or as a table with those columns in a DuckDB file
(``path.duckdb``, table ``parent_map`` unless ``path.duckdb#table`` names another). A record
whose parent has no row is rejected with that reason, never written to a guessed parent.
"""

from __future__ import annotations

import csv
import pathlib
import re

import duckdb

from crmphones.errors import ConfigError

__all__ = ["REQUIRED_COLUMNS", "load_parent_map"]

REQUIRED_COLUMNS = ("source_parent_id", "target_parent_id")


def load_parent_map(path: str) -> dict[str, str]:
    """Read the mapping file (CSV, or a DuckDB table).

    Raises:
        ConfigError: the file is missing, lacks the columns, or maps one parent twice.
    """
    location, _, table = path.partition("#")
    file = pathlib.Path(location).expanduser()
    if not file.is_file():
        msg = f"setting `parent_map_path`: no file at {location}"
        raise ConfigError(msg)
    if file.suffix in (".duckdb", ".db"):
        columns, rows = _duckdb_rows(file, table or "parent_map", path)
        first_line = 1
    else:
        with file.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            columns = next(reader, [])
            rows = list(reader)
        first_line = 2
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        msg = (f"setting `parent_map_path`: {path} needs the columns "
               f"{', '.join(REQUIRED_COLUMNS)} (missing: {', '.join(missing)})")
        raise ConfigError(msg)
    source_at, target_at = (columns.index(c) for c in REQUIRED_COLUMNS)
    mapping: dict[str, str] = {}
    for line, row in enumerate(rows, start=first_line):
        source = _text(row[source_at] if source_at < len(row) else None)
        target = _text(row[target_at] if target_at < len(row) else None)
        if not source or not target:
            continue  # an unmapped parent: its records are rejected with the reason
        if mapping.get(source, target) != target:
            msg = (f"setting `parent_map_path`: {path} row {line} maps parent {source} "
                   f"to {target}, an earlier row to {mapping[source]}")
            raise ConfigError(msg)
        mapping[source] = target
    return mapping


def _duckdb_rows(file: pathlib.Path, table: str, path: str) -> tuple[list[str], list[tuple]]:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", table):
        msg = f"setting `parent_map_path`: {table!r} is not a table name"
        raise ConfigError(msg)
    try:
        with duckdb.connect(str(file), read_only=True) as con:
            cursor = con.execute(f"SELECT * FROM {table}")  # a checked identifier
            columns = [d[0] for d in cursor.description]
            return columns, cursor.fetchall()
    except duckdb.Error as exc:
        msg = f"setting `parent_map_path`: cannot read {path}: {str(exc).splitlines()[0]}"
        raise ConfigError(msg) from None


def _text(value: object) -> str:
    """Ids as text: a warehouse may hold them as integers, a CSV with leading zeros (an
    integer id is written as the CRM writes it, as the target keys owners)."""
    text = "" if value is None else str(value).strip()
    return str(int(text)) if text.isascii() and text.isdigit() else text
