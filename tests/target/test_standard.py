"""The SDK's standard target suite against each emulated CRM.

Its streams are not phone records: the target must take every one of them without
crashing (each lands in rejects with a reason) and keep the SDK's protocol behaviour.
"""

from __future__ import annotations

import tempfile

import duckdb
from singer_sdk.testing import get_target_test_class
from singer_sdk.testing.suites import SingerTestSuite, target_tests
from singer_sdk.testing.target_tests import (
    TargetRecordBeforeSchemaTest,
    TargetRecordMissingKeyProperty,
)

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


def _last_run_reasons(config: dict) -> list[str]:
    with duckdb.connect(config["staging_path"], read_only=True) as ledger:
        return [reason for (reason,) in ledger.execute(
            "SELECT reason FROM rejects WHERE run_id = (SELECT run_id FROM runs "
            "ORDER BY started_at DESC LIMIT 1)").fetchall()]


class TargetRecordBeforeSchemaRejected(TargetRecordBeforeSchemaTest):
    """Where the SDK's standard test expects the run to stop, this target accounts for a
    record of a stream with no SCHEMA as a reject and goes on: every input line is accounted
    for, and one stray record must not cost a migration its others."""

    def test(self) -> None:
        self.runner.sync_all()
        assert any("before any SCHEMA" in reason for reason in _last_run_reasons(
            self.runner.config))


class TargetRecordMissingKeyPropertyRejected(TargetRecordMissingKeyProperty):
    """A record missing its key properties is a reject with that reason, as above."""

    def test(self) -> None:
        self.runner.sync_all()
        assert any(reason.startswith("missing key properties") for reason in _last_run_reasons(
            self.runner.config))


def _suites() -> list[SingerTestSuite]:
    """The SDK's standard target tests, with the two above in place of the ones that expect
    the run to stop."""
    replaced = {TargetRecordBeforeSchemaTest: TargetRecordBeforeSchemaRejected,
                TargetRecordMissingKeyProperty: TargetRecordMissingKeyPropertyRejected}
    return [SingerTestSuite(kind="target", tests=[replaced.get(test, test)
                                                  for test in target_tests.tests])]


# The suite is built when the module is imported, so its emulator and file live as long.
_SERVER = EmulatorServer(OutreachApp(records=0, parents=20, seed=5, token=DESTINATION_TOKEN))
_SERVER.start()
_STAGING = tempfile.mkdtemp(prefix="crmphones-standard-")

TestTargetOutreachStandard = get_target_test_class(
    TargetCRMPhones,
    include_target_tests=False,
    custom_suites=_suites(),
    config=outreach_config(_SERVER, DESTINATION_TOKEN,
                           staging_path=f"{_STAGING}/staging.duckdb",
                           report_dir=f"{_STAGING}/reports"),
)

_ACTIVIX = EmulatorServer(ActivixApp(records=0, parents=20, seed=5, token=DESTINATION_TOKEN,
                                     rate_limit=100_000))
_ACTIVIX.start()

TestTargetActivixStandard = get_target_test_class(
    TargetCRMPhones,
    include_target_tests=False,
    custom_suites=_suites(),
    config=activix_config(_ACTIVIX, DESTINATION_TOKEN, staging_path=f"{_STAGING}/activix.duckdb",
                          report_dir=f"{_STAGING}/reports"),
)

_TICKETEVOLUTION = EmulatorServer(TicketEvolutionApp(
    records=0, parents=20, seed=5, token=DESTINATION_TOKEN, secret=DESTINATION_SECRET,
    rate_limit=100_000))
_TICKETEVOLUTION.start()

TestTargetTicketEvolutionStandard = get_target_test_class(
    TargetCRMPhones,
    include_target_tests=False,
    custom_suites=_suites(),
    config=te_config(_TICKETEVOLUTION, DESTINATION_TOKEN, DESTINATION_SECRET,
                     staging_path=f"{_STAGING}/ticketevolution.duckdb",
                     report_dir=f"{_STAGING}/reports"),
)

_ONEDEGREE = EmulatorServer(OneDegreeApp(records=0, parents=10, seed=5, api_key=DESTINATION_TOKEN,
                                         api_secret=DESTINATION_SECRET))
_ONEDEGREE.start()

TestTargetOneDegreeStandard = get_target_test_class(
    TargetCRMPhones,
    include_target_tests=False,
    custom_suites=_suites(),
    config=od_config(_ONEDEGREE, DESTINATION_TOKEN, DESTINATION_SECRET,
                     staging_path=f"{_STAGING}/onedegree.duckdb",
                     report_dir=f"{_STAGING}/reports"),
)
