"""Run with ``python -m tap_crmphones``."""

from __future__ import annotations

from tap_crmphones.tap import main

main()
