"""tap-crmphones: the Singer tap class. Settings here; everything about an API in its dialect."""

from __future__ import annotations

import typing as t
from functools import cached_property

from singer_sdk import Tap
from singer_sdk import typing as th
from singer_sdk.helpers.capabilities import TapCapabilities

from crmphones.cli import run_plugin
from crmphones.dialects import get_dialect
from crmphones.settings import common_settings, dialect_for
from tap_crmphones.streams import DialectStream

if t.TYPE_CHECKING:
    from singer_sdk.helpers.capabilities import CapabilitiesEnum

    from crmphones.dialects.base import Dialect


class TapCRMPhones(Tap):
    """Extract phone numbers (and their owners) from a CRM's REST API."""

    name = "tap-crmphones"
    package_name = "crmphones"
    # ACTIVATE_VERSION messages need the SDK's `emit_activate_version_messages`, which this
    # tap does not offer: not advertised.
    capabilities: t.ClassVar[list[CapabilitiesEnum]] = [
        c for c in Tap.capabilities if c is not TapCapabilities.ACTIVATE_VERSION]

    config_jsonschema = th.PropertiesList(
        *common_settings(),
        th.Property(
            "start_date", th.DateTimeType,
            description="Read records updated at or after this time on the first run "
            "(later runs resume from the state's bookmark).",
        ),
        th.Property(
            "page_size", th.IntegerType,
            description="Records per page; defaults to the API's largest documented page.",
        ),
    ).to_dict()

    @cached_property
    def dialect(self) -> Dialect:
        """The configured CRM dialect, bound to the account."""
        return dialect_for(self.config)

    def sync_all(self) -> None:
        """Sync the selected streams, then close the account's connections."""
        try:
            super().sync_all()
        finally:
            if "dialect" in self.__dict__:  # built on first use; discovery needs none
                self.dialect.close()

    def discover_streams(self) -> list[DialectStream]:
        """One stream per spec of the configured dialect (no credentials needed to discover)."""
        specs = get_dialect(self.config.get("provider") or "outreach").streams
        return [DialectStream(self, spec) for spec in specs]


def main() -> None:
    """Console entry point."""
    run_plugin(TapCRMPhones)
