"""Run with ``python -m target_crmphones``."""

from __future__ import annotations

from target_crmphones.target import main

main()
