"""Parent maps from CSV files and DuckDB tables."""

from __future__ import annotations

import typing as t

import duckdb
import pytest

from crmphones.errors import ConfigError
from crmphones.mapping import load_parent_map

if t.TYPE_CHECKING:
    import pathlib


def test_csv_map_skips_blank_targets(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "map.csv"
    path.write_text("note,source_parent_id,target_parent_id\nx,1,10\ny,2,\nz, 3 , 30\n")
    assert load_parent_map(str(path)) == {"1": "10", "3": "30"}


def test_duckdb_table_map(tmp_path: pathlib.Path) -> None:
    """A warehouse table with integer ids works, under the default or a named table."""
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE parent_map AS SELECT * FROM (VALUES (1, 101), (2, NULL)) "
                    "t(source_parent_id, target_parent_id)")
        con.execute("CREATE SCHEMA crm; CREATE TABLE crm.leads_for_prospects AS "
                    "SELECT 7 AS source_parent_id, '70' AS target_parent_id")
    assert load_parent_map(str(path)) == {"1": "101"}
    assert load_parent_map(f"{path}#crm.leads_for_prospects") == {"7": "70"}


@pytest.mark.parametrize(("content", "message"), [
    ("source,target\n1,2\n", "missing: source_parent_id, target_parent_id"),
    ("source_parent_id,target_parent_id\n1,2\n1,3\n", "row 3 maps parent 1 to 3"),
])
def test_bad_csv_maps_name_the_setting(tmp_path: pathlib.Path, content: str, message: str) -> None:
    path = tmp_path / "map.csv"
    path.write_text(content)
    with pytest.raises(ConfigError, match="parent_map_path") as caught:
        load_parent_map(str(path))
    assert message in str(caught.value)


def test_missing_table_or_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "empty.duckdb"
    duckdb.connect(str(path)).close()
    with pytest.raises(ConfigError, match="cannot read"):
        load_parent_map(str(path))
    with pytest.raises(ConfigError, match="not a table name"):
        load_parent_map(f"{path}#x; DROP TABLE y")
    with pytest.raises(ConfigError, match="no file at"):
        load_parent_map(str(tmp_path / "nowhere.csv"))
