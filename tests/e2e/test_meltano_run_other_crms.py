"""End to end: the real `meltano` CLI runs meltano.yml's jobs between emulated Activix, Ticket
Evolution and One Degree accounts, each test in a fresh copy of the checkout
(tests/e2e/conftest.py). Outreach's runs, stopped and failing, are in test_meltano_run.py."""

from __future__ import annotations

import typing as t

from tests.e2e.conftest import meltano, valid_e164

if t.TYPE_CHECKING:
    import pathlib
    from collections.abc import Callable

    from tests.e2e.conftest import EmulatorProcess

    Start = Callable[..., EmulatorProcess]


def test_meltano_run_activix_to_ticketevolution(project: pathlib.Path, emulators: Start) -> None:
    """Activix leads' phones onto Ticket Evolution clients: signed batch creates, exact result."""
    activix = emulators("activix", "--records", "60", "--parents", "40", "--seed", "12",
                        "--token", "e2e-activix-key")
    tevo = emulators("ticketevolution", "--records", "0", "--parents", "40", "--seed", "12",
                     "--token", "e2e-tevo-token", "--secret", "e2e-tevo-secret")
    parent_map = project / "lead_to_client.csv"
    parent_map.write_text("source_parent_id,target_parent_id\n" + "".join(
        f"{lead},{lead}\n" for lead in range(1, 41)))
    env = {
        "CRMPHONES_ACTIVIX_PORT": activix.port,
        "CRMPHONES_ACTIVIX_TOKEN": "e2e-activix-key",
        "CRMPHONES_TICKETEVOLUTION_PORT": tevo.port,
        "CRMPHONES_TICKETEVOLUTION_TOKEN": "e2e-tevo-token",
        "CRMPHONES_TICKETEVOLUTION_SECRET": "e2e-tevo-secret",
        "CRMPHONES_PARENT_MAP": str(parent_map),
    }
    result = meltano(project, "run", "activix-to-ticketevolution", env=env)
    assert result.returncode == 0, result.stderr[-6000:]
    assert "e2e-tevo-secret" not in result.stderr

    expected = set()
    for phone in activix.state()["lead_phones"]:
        read = valid_e164(phone["number"], None,
                          None if phone["extension"] is None else str(phone["extension"]))
        if read:
            expected.add((str(phone["lead_id"]), *read))
    written = {(str(p["client_id"]), f"+{p['country_code']}{p['number']}", p["extension"])
               for p in tevo.state()["phone_numbers"]}
    assert written == expected
    posts = [r for r in tevo.requests() if r["method"] == "POST"]
    assert len(posts) == len({lead for lead, _, _ in expected}), "one POST per client"


def test_meltano_run_onedegree_to_onedegree(project: pathlib.Path, emulators: Start) -> None:
    """All three phone streams between two One Degree accounts with the same owners: signed
    writes through each owner's nested route, the destination ends with exactly the valid
    phones on the same owners, and a rerun (FULL_TABLE) writes nothing."""
    source = emulators("onedegree", "--records", "80", "--parents", "15", "--seed", "13",
                       "--api-key", "e2e-od-source", "--api-secret", "e2e-od-source-secret")
    destination = emulators("onedegree", "--records", "0", "--parents", "15", "--seed", "13",
                            "--api-key", "e2e-od-key", "--api-secret", "e2e-od-secret")
    env = {
        "CRMPHONES_ONEDEGREE_SOURCE_PORT": source.port,
        "CRMPHONES_ONEDEGREE_SOURCE_KEY": "e2e-od-source",
        "CRMPHONES_ONEDEGREE_SOURCE_SECRET": "e2e-od-source-secret",
        "CRMPHONES_ONEDEGREE_PORT": destination.port,
        "CRMPHONES_ONEDEGREE_KEY": "e2e-od-key",
        "CRMPHONES_ONEDEGREE_SECRET": "e2e-od-secret",
    }
    result = meltano(project, "run", "onedegree-to-onedegree", env=env)
    assert result.returncode == 0, result.stderr[-6000:]
    assert "e2e-od-secret" not in result.stderr

    expected = set()
    for phone in source.state()["phones"]:
        digits, _, ext = phone["digits"].partition(" x")
        read = valid_e164(digits, None, ext or None)
        if read:
            expected.add((phone["phoneable_type"], phone["phoneable_id"], *read))
    written = set()
    for phone in destination.state()["phones"]:
        digits, _, ext = phone["digits"].partition(" x")
        written.add((phone["phoneable_type"], phone["phoneable_id"], digits, ext or None))
    assert written == expected

    writes = destination.writes()
    again = meltano(project, "run", "onedegree-to-onedegree", env=env)
    assert again.returncode == 0, again.stderr[-6000:]
    assert destination.writes() == writes
