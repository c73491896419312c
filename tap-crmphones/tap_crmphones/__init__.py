"""tap-crmphones: phone numbers out of CRMs, as canonical Singer records."""

from __future__ import annotations
