"""target-crmphones: phone records into a CRM, staged and de-duplicated in DuckDB."""

from __future__ import annotations

import os

# Arrow's buffers from the C allocator, unless the user chose a pool: mimalloc, Arrow's
# default, keeps what each batch freed resident. Arrow reads the variable once, when pyarrow
# is first imported, hence here.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
