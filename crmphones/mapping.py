"""Parent mapping for migrations: the source CRM's owner id -> the destination's owner id.

The user supplies it as a CSV file with a ``source_parent_id,target_parent_id`` header
(other columns are ignored). A record whose parent has no row is rejected with that reason,
never written to a guessed parent.
"""

from __future__ import annotations

import csv
import pathlib

from crmphones.errors import ConfigError

__all__ = ["REQUIRED_COLUMNS", "load_parent_map"]

REQUIRED_COLUMNS = ("source_parent_id", "target_parent_id")


def load_parent_map(path: str) -> dict[str, str]:
    """Read the mapping file.

    Raises:
        ConfigError: the file is missing, lacks the columns, or maps one parent twice.
    """
    file = pathlib.Path(path).expanduser()
    if not file.is_file():
        msg = f"setting `parent_map_path`: no file at {path}"
        raise ConfigError(msg)
    mapping: dict[str, str] = {}
    with file.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            msg = (f"setting `parent_map_path`: {path} needs a header with "
                   f"{', '.join(REQUIRED_COLUMNS)} (missing: {', '.join(missing)})")
            raise ConfigError(msg)
        for line, row in enumerate(reader, start=2):
            source = (row["source_parent_id"] or "").strip()
            target = (row["target_parent_id"] or "").strip()
            if not source or not target:
                continue  # an unmapped parent: its records are rejected with the reason
            if mapping.get(source, target) != target:
                msg = (f"setting `parent_map_path`: {path} line {line} maps parent {source} "
                       f"to {target}, an earlier line to {mapping[source]}")
                raise ConfigError(msg)
            mapping[source] = target
    return mapping
