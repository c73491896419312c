"""The SDK's standard target suite against each emulated CRM.

Its streams are not phone records: the target must take every one of them without
crashing (each lands in rejects with a reason) and keep the SDK's protocol behaviour.
"""

from __future__ import annotations

import tempfile

from singer_sdk.testing import get_target_test_class

from crmphones_emulators import EmulatorServer
from crmphones_emulators.activix import ActivixApp
from crmphones_emulators.onedegree import OneDegreeApp
from crmphones_emulators.outreach import OutreachApp
from crmphones_emulators.ticketevolution import TicketEvolutionApp
from target_crmphones.target import TargetCRMPhones
from tests.conftest import (
    DESTINATION_SECRET,
    DESTINATION_TOKEN,
    activix_config,
    od_config,
    outreach_config,
    te_config,
)

# The suite is built when the module is imported, so its emulator and file live as long.
_SERVER = EmulatorServer(OutreachApp(records=0, parents=20, seed=5, token=DESTINATION_TOKEN))
_SERVER.start()
_STAGING = tempfile.mkdtemp(prefix="crmphones-standard-")

TestTargetOutreachStandard = get_target_test_class(
    TargetCRMPhones,
    config=outreach_config(_SERVER, DESTINATION_TOKEN,
                           staging_path=f"{_STAGING}/staging.duckdb",
                           report_dir=f"{_STAGING}/reports"),
)

_ACTIVIX = EmulatorServer(ActivixApp(records=0, parents=20, seed=5, token=DESTINATION_TOKEN,
                                     rate_limit=100_000))
_ACTIVIX.start()

TestTargetActivixStandard = get_target_test_class(
    TargetCRMPhones,
    config=activix_config(_ACTIVIX, DESTINATION_TOKEN, staging_path=f"{_STAGING}/activix.duckdb",
                          report_dir=f"{_STAGING}/reports"),
)

_TICKETEVOLUTION = EmulatorServer(TicketEvolutionApp(
    records=0, parents=20, seed=5, token=DESTINATION_TOKEN, secret=DESTINATION_SECRET,
    rate_limit=100_000))
_TICKETEVOLUTION.start()

TestTargetTicketEvolutionStandard = get_target_test_class(
    TargetCRMPhones,
    config=te_config(_TICKETEVOLUTION, DESTINATION_TOKEN, DESTINATION_SECRET,
                     staging_path=f"{_STAGING}/ticketevolution.duckdb",
                     report_dir=f"{_STAGING}/reports"),
)

_ONEDEGREE = EmulatorServer(OneDegreeApp(records=0, parents=10, seed=5, api_key=DESTINATION_TOKEN,
                                         api_secret=DESTINATION_SECRET))
_ONEDEGREE.start()

TestTargetOneDegreeStandard = get_target_test_class(
    TargetCRMPhones,
    config=od_config(_ONEDEGREE, DESTINATION_TOKEN, DESTINATION_SECRET,
                     staging_path=f"{_STAGING}/onedegree.duckdb",
                     report_dir=f"{_STAGING}/reports"),
)
