"""Answers real services give that the happy path never meets (issue 23, items 3 to 5): links
to another origin, a record the user may not edit, a scope the token lacks, Ticket Evolution's
202 and 301. Real emulators over loopback; the target as Meltano runs it."""

from __future__ import annotations

import typing as t

from crmphones.settings import dialect_for
from crmphones_emulators import EmulatorServer
from crmphones_emulators.activix import ActivixApp
from tests.conftest import (
    DESTINATION_SECRET,
    DESTINATION_TOKEN,
    activix_config,
    outreach_config,
    te_config,
)
from tests.target.conftest import SCHEMA, TargetRunner, last_run_counts, ledger, record

if t.TYPE_CHECKING:
    from crmphones_emulators import EmulatorServer as Server


def test_next_links_to_another_host_or_scheme_stay_on_api_url(outreach_source: Server,
                                                               activix_source: Server) -> None:
    """Outreach links to another host, Activix to https on our http emulator (the reverse of
    its docs' http:// example): every page is read from the configured origin, the other
    host never hears a credential."""
    with EmulatorServer(ActivixApp(records=0, parents=1, token="elsewhere")) as elsewhere:
        outreach_source.app.configure({"link_origin": elsewhere.url})
        activix_source.app.configure({"link_origin": "https://" + activix_source.url[7:]})
        outreach = dialect_for(outreach_config(outreach_source, "source-token-s3cr3t",
                                               page_size=40))
        activix = dialect_for(activix_config(activix_source, "source-token-s3cr3t", page_size=30))
        try:
            phones = list(outreach.read("phone_numbers", None))
            leads = list(activix.read("leads", None))
        finally:
            outreach.close()
            activix.close()
        assert elsewhere.requests == []
    assert len(phones) == 300 and len({p["id"] for p in phones}) == 300
    assert len(leads) == 100
    assert sum(1 for r in outreach_source.requests if "after" in r.query) >= 7
    assert sum(1 for r in activix_source.requests if "page=" in r.query) >= 3


def _outreach_records(prospects: range) -> list[dict[str, t.Any]]:
    return [record(parent_type="prospect", parent_id=str(p), number=f"+1 415 555 {p:04d}")
            for p in prospects]


def test_outreach_403_for_one_record_rejects_it_and_the_run_goes_on(
        outreach_destination: Server, target_runner: TargetRunner, staging_path: str) -> None:
    """Prospects 3 and 7 are not this user's to edit (403 unauthorizedRequest): their phones
    are rejected with Outreach's words; the others are created."""
    outreach_destination.app.configure({"refused_prospects": [3, 7]})
    config = outreach_config(outreach_destination, DESTINATION_TOKEN, staging_path=staging_path)
    target_runner.run(config, [SCHEMA, *_outreach_records(range(1, 11))])
    counts = last_run_counts(staging_path)
    assert (counts["created"], counts["rejected"]) == (8, 2)
    reasons = ledger(staging_path, "SELECT detail FROM outcomes WHERE outcome = 'rejected' "
                                   "ORDER BY seq")  # DuckDB's row order is not the insert order
    assert [r for (r,) in reasons] == ["HTTP 403: You are not allowed to modify phone numbers "
                                       f"of prospect {p}." for p in (3, 7)]


def test_outreach_403_for_the_scope_stops_the_run_naming_the_setting(
        outreach_destination: Server, target_runner: TargetRunner, staging_path: str) -> None:
    outreach_destination.app.configure({"scope_refused": True})
    config = outreach_config(outreach_destination, DESTINATION_TOKEN, staging_path=staging_path)
    result = target_runner.run(config, [SCHEMA, *_outreach_records(range(1, 4))], check=False)
    assert result.returncode != 0
    assert "unauthorizedOauthScope" in result.stderr or "lacks the scope" in result.stderr
    assert "check the `access_token` setting" in result.stderr
    assert DESTINATION_TOKEN not in result.stderr


def _te_records(clients: range) -> list[dict[str, t.Any]]:
    return [record(parent_type="client", parent_id=str(c), number=f"+1 415 555 {c:04d}",
                   label="work") for c in clients]


def test_ticket_evolution_202_is_looked_up_never_sent_twice(
        te_destination: Server, target_runner: TargetRunner, staging_path: str) -> None:
    """Every create answers 202 (accepted, no phones in the answer): the target looks the
    client's phones up and finds them; nothing is created twice."""
    te_destination.app.configure({"accept_creates": True})
    config = te_config(te_destination, DESTINATION_TOKEN, DESTINATION_SECRET,
                       staging_path=staging_path)
    target_runner.run(config, [SCHEMA, *_te_records(range(1, 6))])
    phones = te_destination.app.snapshot()["phone_numbers"]
    assert sorted(p["client_id"] for p in phones) == [1, 2, 3, 4, 5]
    assert sum(1 for r in te_destination.requests if r.method == "POST") == 5
    assert last_run_counts(staging_path)["created"] == 5


def test_ticket_evolution_301_stops_the_run_naming_api_url(
        te_destination: Server, target_runner: TargetRunner, staging_path: str) -> None:
    te_destination.app.configure({"redirect_to": "https://api.example.com/v10/clients"})
    config = te_config(te_destination, DESTINATION_TOKEN, DESTINATION_SECRET,
                       staging_path=staging_path)
    result = target_runner.run(config, [SCHEMA, *_te_records(range(1, 3))], check=False)
    assert result.returncode != 0
    assert "the API moved (to https://api.example.com/v10/clients); check the `api_url` setting" \
        in result.stderr
