"""target-crmphones: phone records into a CRM, staged and de-duplicated in DuckDB."""

from __future__ import annotations

import os

# Arrow's buffers from the C allocator, unless the user chose a pool. mimalloc, Arrow's
# default, keeps what a batch freed resident, in both processes. Arrow reads the variable once,
# when pyarrow is first imported, hence here (``pa.set_memory_pool`` later reaches only
# pyarrow's own calls, not Arrow's: it changed nothing measurable).
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
