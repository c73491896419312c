"""Bad input never crashes the target or reaches the CRM: arbitrary records (hypothesis) keep
the accounting identity, and whatever lands in the CRM is a valid E.164 number."""

from __future__ import annotations

import re
import tempfile
import typing as t
import urllib.parse

import duckdb
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from crmphones.dialects import get_dialect
from crmphones.settings import dialect_for
from target_crmphones.intake import Intake
from target_crmphones.loader import Load
from tests.entry_points import run_target
from tests.reliability.conftest import DESTINATIONS, serve

_SERVER = serve("outreach")  # one account for every example; lives as long as the module
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")

_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                     st.text(max_size=40), st.text(alphabet="0123456789()+-. xext#", max_size=30))
_numbers = st.one_of(_scalars, st.sampled_from([
    "(212) 555-0101", "+1 212 555 0102 ext. 7", "212.555.0103 x12", "0044 20 7946 0958",
    "+44 20 7946 0959", "n/a", "", " ", "\u0000", "😀", "+1" + "9" * 60, "2125550104"]))
_records = st.fixed_dictionaries(
    {}, optional={
        "parent_id": st.one_of(_scalars, st.integers(1, 130).map(str)),
        "parent_type": st.one_of(_scalars, st.sampled_from(["prospect", "lead", "client"])),
        "number": _numbers, "e164": _numbers, "extension": _scalars,
        "phone_type": st.one_of(_scalars, st.sampled_from(["mobile", "fax", "Cell"])),
        "label": _scalars, "is_primary": _scalars, "region": _scalars,
        "ancestors": st.one_of(_scalars, st.dictionaries(st.text(max_size=5), _scalars, max_size=2)),
    })
_batches = st.lists(st.one_of(_records, st.dictionaries(st.text(max_size=8), _scalars,
                                                        max_size=4)), min_size=1, max_size=25)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=_batches)
# Found by this test: a parent id that is no integer reached Outreach's prospect filter,
# whose 400 stopped the run. "1,2" would read as two prospects; U+0661 is a digit to isdigit.
@example(batch=[{"parent_id": pid, "number": "2012000000"} for pid in (":", "1,2", "\u0661")])
def test_any_records_keep_the_accounting_identity(batch: list[dict[str, t.Any]]) -> None:
    dialect = dialect_for(DESTINATIONS["outreach"].settings(_SERVER.url))
    with tempfile.TemporaryDirectory() as folder:
        load = Load(dialect, f"{folder}/ledger.duckdb", dry_run=False, report_dir=None)
        try:
            load.stage_batch([(load.next_seq(), "phones", record) for record in batch])
            load.write_run()
            counts = load.finish()
        finally:
            load.close()
    assert counts["received"] == len(batch)
    assert sum(v for k, v in counts.items() if k != "received") == len(batch)
    for phone in _SERVER.app.snapshot()["phoneNumbers"]:
        assert _E164.match(phone["attributes"]["number"]), phone


def test_every_input_line_is_accounted_for(tmp_path: t.Any) -> None:
    """Garbled lines, records of no known stream and records missing their key properties
    become rejects that keep the raw text and the identity fields that could be read; the
    other records land, and every line is in ``received``."""
    import json

    import duckdb


    server = serve("outreach")
    try:
        staging = str(tmp_path / "ledger.duckdb")
        lines = [
            json.dumps({"type": "SCHEMA", "stream": "p", "key_properties": ["id"],
                        "schema": {"type": "object", "properties": {}}}),
            "this is not json",
            "[1, 2]",
            json.dumps({"record": {"parent_id": "1"}}),
            json.dumps({"type": "RECORD", "stream": "p", "record": {
                "id": "a", "parent_id": "1", "number": "2125550101"}}),
            json.dumps({"type": "RECORD", "stream": "p", "record": "a string"}),
            json.dumps({"type": "RECORD", "stream": "nowhere", "record": {
                "id": "b", "parent_id": "7", "number": "2125550199"}}),
            json.dumps({"type": "RECORD", "stream": "p", "record": {  # no `id`, a key property
                "parent_id": "8", "number": "2125550198"}}),
            json.dumps({"type": "SCHEMA", "stream": "p", "key_properties": [],  # schema change
                        "schema": {"type": "object", "properties": {"x": {"type": "string"}}}}),
            json.dumps({"type": "RECORD", "stream": "p", "record": {"parent_id": "2",
                                                                     "number": "2125550102"}}),
            '{"type": "RECORD", "stream": "p", "record": {"parent_id": "3", "number": ',
        ]
        config = {**DESTINATIONS["outreach"].settings(server.url), "staging_path": staging,
                  "report_dir": ""}
        result = run_target(config, lines, tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "Traceback" not in result.stderr
        for line_number in (2, 3, 4, 7, 8, 11):
            assert f"input line {line_number} rejected" in result.stderr
        assert len(server.app.snapshot()["phoneNumbers"]) == 2
        with duckdb.connect(staging, read_only=True) as con:
            counts = con.execute("SELECT received, created, rejected FROM runs").fetchone()
            rejects = con.execute("SELECT stream, parent_id, number, reason, record FROM rejects "
                                  "ORDER BY seq").fetchall()
        assert counts == (9, 2, 7)
        reasons = [reason for _, _, _, reason, _ in rejects]
        assert sum(reason.startswith("not a Singer message") for reason in reasons) == 4
        assert "record of stream 'nowhere' before any SCHEMA of it" in reasons
        assert "missing key properties: id" in reasons
        assert "record is not a JSON object" in reasons
        kept = {reason: (stream, parent, number, json.loads(record))
                for stream, parent, number, reason, record in rejects}
        assert kept["missing key properties: id"][:3] == ("p", "8", "2125550198")
        assert kept["record of stream 'nowhere' before any SCHEMA of it"][:3] == (
            "nowhere", "7", "2125550199")
        assert "this is not json" in [record for *_, record in kept.values()]
    finally:
        server.stop()


def _nested(depth: int) -> dict[str, t.Any]:
    value: dict[str, t.Any] = {"parent_id": "1", "number": "2125550111"}
    for _ in range(depth - 1):
        value = {"a": value}
    return {"parent_id": "1", "number": "2125550112", "raw": value}


#: Messages that break the protocol: each stops the run with one line naming it and its line.
_PROTOCOL_BREAKS = {
    "unknown type": {"type": "FOO"},
    "numeric type": {"type": 5},
    "null type": {"type": None},
    "list type": {"type": ["RECORD"]},
    "numeric stream in a schema": {"type": "SCHEMA", "stream": 5, "schema": {"properties": {}}},
    "huge stream in a schema": {"type": "SCHEMA", "stream": "s" * 70_000,
                                "schema": {"properties": {}}},
    "batch before its schema": {"type": "BATCH", "stream": "q", "manifest": [],
                                "encoding": {"format": "jsonl", "compression": None}},
    "batch without encoding": {"type": "BATCH", "stream": "p", "manifest": ["file:///x"]},
    "batch manifest not a list": {"type": "BATCH", "stream": "p", "manifest": "file:///x",
                                  "encoding": {"format": "jsonl"}},
}


@pytest.mark.parametrize("name", list(_PROTOCOL_BREAKS))
def test_a_message_that_breaks_the_protocol_ends_in_one_line(name: str, tmp_path: t.Any) -> None:
    import json


    server = serve("outreach")
    try:
        lines = [json.dumps({"type": "SCHEMA", "stream": "p", "key_properties": [],
                             "schema": {"type": "object", "properties": {}}}),
                 json.dumps(_PROTOCOL_BREAKS[name])]
        config = {**DESTINATIONS["outreach"].settings(server.url),
                  "staging_path": str(tmp_path / "ledger.duckdb"), "report_dir": ""}
        result = run_target(config, lines, tmp_path)
    finally:
        server.stop()
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "input line 2" in last and len(last) < 600, last
    assert result.stdout == ""


def test_hostile_records_become_rejects(tmp_path: t.Any) -> None:
    """Streams that are not names, a 10 MB field, a record nested 900 deep: each a reject
    with its reason (limits checked before DuckDB or a recursive walk sees them)."""
    import json

    import duckdb


    server = serve("outreach")
    try:
        staging = str(tmp_path / "ledger.duckdb")
        good = {"parent_id": "1", "number": "2125550101"}
        lines = [
            json.dumps({"type": "SCHEMA", "stream": "p", "key_properties": [],
                        "schema": {"type": "object", "properties": {}}}),
            *(json.dumps({"type": "RECORD", "stream": stream, "record": good})
              for stream in (5, ["p"], {"p": 1}, "s" * 70_000, None)),
            json.dumps({"type": "RECORD", "stream": "p", "record": {**good, "label": "x" * 10_000_000}}),
            json.dumps({"type": "RECORD", "stream": "p", "record": _nested(900)}),
            json.dumps({"type": "RECORD", "stream": "p", "record": good}),
        ]
        config = {**DESTINATIONS["outreach"].settings(server.url), "staging_path": staging,
                  "report_dir": ""}
        result = run_target(config, lines, tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "Traceback" not in result.stderr
        with duckdb.connect(staging, read_only=True) as con:
            counts = con.execute("SELECT received, created, rejected FROM runs").fetchone()
            reasons = [r for (r,) in con.execute("SELECT reason FROM rejects ORDER BY seq").fetchall()]
        assert counts == (8, 1, 7)
        assert reasons[:5] == ["stream must be a name of 1 to 255 characters"] * 5
        assert reasons[5].startswith("record larger than")
        assert reasons[6] == "record nested deeper than 254 levels"
    finally:
        server.stop()


def test_max_rejected_fraction_fails_a_run_of_garbage(tmp_path: t.Any) -> None:
    """Past the operator's limit the run fails in one line and passes no final STATE."""
    import json


    server = serve("outreach")
    try:
        lines = [json.dumps({"type": "SCHEMA", "stream": "p", "key_properties": [],
                             "schema": {"type": "object", "properties": {}}}),
                 json.dumps({"type": "RECORD", "stream": "p",
                             "record": {"parent_id": "1", "number": "2125550101"}}),
                 "garbage", "more garbage",
                 json.dumps({"type": "STATE", "value": {"bookmarks": {"p": 4}}})]
        config = {**DESTINATIONS["outreach"].settings(server.url), "report_dir": "",
                  "staging_path": str(tmp_path / "ledger.duckdb")}
        tolerant = run_target({**config, "max_rejected_fraction": 0.7}, lines, tmp_path)
        strict = run_target({**config, "max_rejected_fraction": 0.5}, lines, tmp_path)
    finally:
        server.stop()
    assert tolerant.returncode == 0, tolerant.stderr[-2000:]
    assert tolerant.stdout.strip()
    assert strict.returncode == 1
    assert "max_rejected_fraction" in strict.stderr.strip().splitlines()[-1]
    assert strict.stdout == ""


# Ids that are not integers but would address another owner once put in a URL path, a
# percent-decoding server, or an id filter; and a digit of another script.
_HOSTILE_IDS = ("3/../4", "4/phones/..", "%34", "4?x=1", "1,4", "\u0664")


@pytest.mark.parametrize("dialect", sorted(DESTINATIONS))
def test_parent_ids_that_are_not_integers_never_reach_a_url(dialect: str, tmp_path: t.Any) -> None:
    """Every CRM's ids are integers: another id is rejected with that reason before any request,
    so nothing is read or written for the owner it could address (4), and the good record lands."""
    server = serve(dialect)
    try:
        records = [{"parent_type": get_dialect(dialect).parent_types[0], "parent_id": pid,
                    "number": f"+1212555{n:04d}"} for n, pid in enumerate(("5", *_HOSTILE_IDS))]
        if dialect == "onedegree":  # an ancestor id goes into the path too
            records.append({"parent_type": "location", "parent_id": "5",
                            "ancestors": {"organization": "3/../4"}, "number": "+12125559999"})
        load = Load(dialect_for(DESTINATIONS[dialect].settings(server.url)),
                    str(tmp_path / "ledger.duckdb"), dry_run=False, report_dir=None)
        try:
            load.stage_batch([(load.next_seq(), "phones", record) for record in records])
            load.write_run()
            counts = load.finish()
        finally:
            load.close()
        with duckdb.connect(str(tmp_path / "ledger.duckdb"), read_only=True) as con:
            reasons = [reason for (reason,) in con.execute("SELECT reason FROM rejects").fetchall()]
        assert (counts["created"], counts["rejected"]) == (1, len(records) - 1), counts
        assert all("integers" in reason for reason in reasons), reasons
        for request in server.requests:
            assert re.fullmatch(r"[a-z0-9/_-]+", request.path, re.IGNORECASE), request
            assert "4" not in request.query.split("=")[-1].split(","), request
        (phone,) = DESTINATIONS[dialect].view(server.app.snapshot())
        assert "5" in {str(part) for part in phone}
    finally:
        server.stop()


def _load(dialect: str, url: str, staging: str, batch: list[tuple[str, dict[str, t.Any]]],
          parent_map: dict[str, str] | None = None) -> tuple[dict[str, int], list[str]]:
    """One in-process run of (stream, record) pairs: its counts and its reject reasons."""
    destination = dialect_for(DESTINATIONS[dialect].settings(url))
    load = Load(destination, staging, dry_run=False, report_dir=None,
                intake=Intake(destination, parent_map))
    try:
        for stream in dict.fromkeys(stream for stream, _ in batch):  # a batch is one stream's
            load.stage_batch([(load.next_seq(), stream, record) for name, record in batch
                             if name == stream])
        load.write_run()
        counts = load.finish()
    finally:
        load.close()
    with duckdb.connect(staging, read_only=True) as con:
        reasons = [reason for (reason,) in con.execute(
            "SELECT reason FROM rejects WHERE run_id = (SELECT run_id FROM runs "
            "ORDER BY started_at DESC LIMIT 1) ORDER BY seq").fetchall()]
    return counts, reasons


#: Owner 2 of each kind in the emulators (One Degree's location 2 and opportunity 2 are
#: organization 2's), with the ancestors a record names it by.
_ANCESTORS = {"location": {"organization": "2"}, "opportunity": {"organization": "2"}}


@pytest.mark.parametrize("mapped", [False, True], ids=["direct", "parent_map"])
@pytest.mark.parametrize("dialect", sorted(DESTINATIONS))
def test_a_record_without_parent_type_reaches_the_owner_it_names_or_none(
        dialect: str, mapped: bool, tmp_path: t.Any) -> None:
    """Without ``parent_type`` a record's kind is its stream's when that stream holds one kind
    (One Degree's ``location_phones``: it was written to organization 2), the CRM's when it
    has one kind; on One Degree's three kinds another stream's record is rejected, never
    written to a kind that happens to exist. With a parent map the mapped id is the one kind
    of a one-kind CRM (whatever the source's kind); One Degree's needs the record's kind."""
    cls = get_dialect(dialect)
    one_kind = cls.parent_types[0] if len(cls.parent_types) == 1 else None
    parent = "7002" if mapped else "2"  # the source's id, mapped to 2
    cases: list[tuple[str, dict[str, t.Any], str | None]] = [  # stream, record, kind or None
        (spec.name, {"parent_id": parent, "ancestors": _ANCESTORS.get(spec.parent_type or "")},
         spec.parent_type or one_kind)
        for spec in cls.streams if spec.is_phone_stream]
    cases.append(("phones", {"parent_id": parent}, one_kind))  # a stream of no one kind
    # The source's own kind: written to a one-kind CRM only through a parent map.
    cases.append(("phones", {"parent_id": parent, "parent_type": "source_kind"},
                  one_kind if mapped else None))
    if one_kind is None:  # One Degree: a kind the record names is taken, mapped or not
        cases += [("phones", {"parent_id": parent, "parent_type": kind,
                              "ancestors": _ANCESTORS.get(kind)}, kind)
                  for kind in cls.parent_types]
    batch = [(stream, {**record, "number": f"+1212555{n:04d}"})
             for n, (stream, record, _) in enumerate(cases)]
    server = serve(dialect)
    try:
        counts, reasons = _load(dialect, server.url, str(tmp_path / "ledger.duckdb"), batch,
                                {"7002": "2"} if mapped else None)
        snapshot = server.app.snapshot()
    finally:
        server.stop()
    expected = [kind for _, _, kind in cases]
    assert (counts["created"], counts["rejected"]) == (
        sum(k is not None for k in expected), expected.count(None)), (counts, reasons)
    assert all("parent_type" in reason for reason in reasons), reasons
    if one_kind is None:
        assert any(reason.startswith("missing parent_type") for reason in reasons), reasons
        written = sorted((p["phoneable_type"].lower(), p["phoneable_id"])
                         for p in snapshot["phones"])
        assert written == sorted((k, 2) for k in expected if k is not None)
    else:
        assert {str(phone[0]) for phone in DESTINATIONS[dialect].view(snapshot)} == {"2"}


#: Ids no API and no BIGINT holds; each was taken, sent as a JSON number, and the next run
#: stopped with ``Integer exceeds 64-bit range``.
_OUT_OF_RANGE = ("99999999999999999999999999", str(2**63), "0", "000", "9" * 5000)


@pytest.mark.parametrize("dialect", sorted(DESTINATIONS))
def test_ids_beyond_64_bits_are_rejected_at_intake(dialect: str, tmp_path: t.Any) -> None:
    """Parent and ancestor ids from 1 to 2**63-1 only: the others are rejected with the range
    before any request, in every dialect; the next run is not stopped by them; ``0005001``
    (issue 26) is still read as 5001, 2**63-1 still reaches the API."""
    kind = get_dialect(dialect).parent_types[0]
    records = [{"parent_id": pid} for pid in _OUT_OF_RANGE]
    records.append({"parent_id": 99999999999999999999999999})  # a JSON number
    if dialect == "onedegree":  # the one CRM whose owners' routes take ancestors' ids
        records.append({"parent_id": "5", "parent_type": "location",
                        "ancestors": {"organization": "99999999999999999999999999"}})
    records += [{"parent_id": "0000005"}, {"parent_id": str(2**63 - 1)}]
    batch = [("phones", {"parent_type": kind, **record, "number": f"+1212555{n:04d}"})
             for n, record in enumerate(records)]
    server = serve(dialect)
    staging = str(tmp_path / "ledger.duckdb")
    try:
        for _ in range(2):  # the next run reads what this one staged
            counts, reasons = _load(dialect, server.url, staging, batch)
            id_reasons = [r for r in reasons if "ids are integers from 1 to 9223372036854775807"
                          in r]
            assert len(id_reasons) == len(records) - 2, reasons
            assert counts["received"] == sum(v for k, v in counts.items() if k != "received")
            assert "got '99999999999999999999…'" in id_reasons[-1], id_reasons
        sent = [f"{request.path}?{request.query}" for request in server.requests]
        snapshot = server.app.snapshot()
    finally:
        server.stop()
    assert not any(re.search(r"\b(0+|9{20,}|9223372036854775808)\b", url) for url in sent), sent
    assert any(str(2**63 - 1) in urllib.parse.unquote(url) for url in sent), sent
    assert {str(phone[0]) if dialect != "onedegree" else str(phone[1])
            for phone in DESTINATIONS[dialect].view(snapshot)} == {"5"}
