"""Run the tap with ``python -m tap_crmphones``."""

from __future__ import annotations

from tap_crmphones.tap import TapCRMPhones

TapCRMPhones.cli()
