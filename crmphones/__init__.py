"""crmphones: the shared core of tap-crmphones and target-crmphones.

The tree is the architecture:

- ``records``: the canonical phone record, the contract between tap and target.
- ``phones``: normalization with phonenumbers (E.164, extension, region, type).
- ``http``: the one httpx client (retry, 429 + Retry-After, redaction).
- ``dialects``: one module per CRM API, holding everything about it.
- ``plan``: desired phones vs the destination's phones -> create / update / nothing.
- ``emulator``: stdlib-only fakes of the four APIs, for tests, benchmarks and demos.
"""

from __future__ import annotations

__all__: list[str] = []
