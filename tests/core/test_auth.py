"""Request signing: the vendors' own example, sorting, and what a signature covers."""

from __future__ import annotations

import httpx

from crmphones.auth import (
    OneDegreeSigner,
    TicketEvolutionSigner,
    one_degree_signature,
    ticket_evolution_signature,
)


def test_ticket_evolution_vendor_example() -> None:
    """The vendor wiki's worked example (secret xyz, the pre-/v9 path) gives its value."""
    url = httpx.URL("https://api.ticketevolution.com/brokerages?page=1&per_page=1")
    assert ticket_evolution_signature("xyz", "GET", url, b"") == (
        "ohGcFIHF3vg75A8Kpg42LNxuQpQZJsTBKv8xnZASzu0=")


def test_ticket_evolution_signs_sorted_query_without_port() -> None:
    """Query order and the port we connect to do not change the signature."""
    a = httpx.URL("http://127.0.0.1:8080/v9/clients?per_page=1&page=2")
    b = httpx.URL("http://127.0.0.1/v9/clients?page=2&per_page=1")
    assert ticket_evolution_signature("s", "GET", a, b"") == ticket_evolution_signature(
        "s", "GET", b, b"")
    assert ticket_evolution_signature("s", "GET", a, b"") != ticket_evolution_signature(
        "other", "GET", a, b"")


def test_ticket_evolution_signs_the_body_bytes_sent() -> None:
    """POST signs the exact body; one changed byte changes the signature."""
    signer = TicketEvolutionSigner("token", "secret")
    request = httpx.Request("POST", "https://api.ticketevolution.com/v9/clients/1/phone_numbers",
                            content=b'{"phone_numbers":[{"number":"5415550123"}]}')
    signed = next(signer.auth_flow(request))
    expected = ticket_evolution_signature("secret", "POST", request.url, request.content)
    assert signed.headers["X-Signature"] == expected
    assert signed.headers["X-Token"] == "token"
    assert expected != ticket_evolution_signature("secret", "POST", request.url,
                                                  b'{"phone_numbers":[{"number":"5415550124"}]}')


def test_one_degree_signs_writes_only() -> None:
    """Writes get a date and a signature over body and date; reads get neither."""
    signer = OneDegreeSigner("secret")
    read = next(signer.auth_flow(httpx.Request("GET", "https://data.1degree.org/v1/organizations")))
    assert "1deg-Signature" not in read.headers
    write = next(signer.auth_flow(httpx.Request(
        "POST", "https://data.1degree.org/v1/organizations/1/phones", content=b'{"a":1}')))
    date = write.headers["1deg-Date"]
    assert len(date) == 20
    assert date.endswith("Z")
    assert write.headers["1deg-Signature"] == one_degree_signature("secret", b'{"a":1}', date)
    assert one_degree_signature("secret", b'{"a":2}', date) != write.headers["1deg-Signature"]
    assert one_degree_signature("other", b'{"a":1}', date) != write.headers["1deg-Signature"]
