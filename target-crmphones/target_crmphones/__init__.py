"""target-crmphones: phone records into a CRM, staged and de-duplicated in DuckDB."""

from __future__ import annotations
