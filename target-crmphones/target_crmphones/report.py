"""The run report: what a person reads after a run (log, JSON, Markdown, CSV).

Built from the staging ledger and the HTTP client's counters, so it says nothing the ledger
cannot show, and holds no setting (no secret can reach it).
"""

from __future__ import annotations

import json
import pathlib
import typing as t

from crmphones.records import Outcome

if t.TYPE_CHECKING:
    from target_crmphones.staging import Staging

__all__ = ["RunReport", "write_report"]

#: Every record received ends in one of these (``filtered``: a stream map dropped it).
OUTCOMES = (*(outcome.value for outcome in Outcome), "filtered")
_SAMPLE = 10  # rows per action in the Markdown sample


class RunReport(t.TypedDict):
    run_id: str
    provider: str
    dry_run: bool
    #: In a dry run: the rejects only the CRM can give, which the plan cannot show.
    crm_only_rejects: str | None
    #: How the run ended: finished, interrupted or failed (then ``error`` says why).
    status: str
    error: str | None
    started_at: str
    duration_seconds: float
    counts: dict[str, int]
    rejects_by_reason: list[dict[str, t.Any]]
    api_calls_by_status: dict[str, int]
    api_calls: int
    api_calls_per_second: float
    rate_limit_wait_seconds: float
    #: Per stream, the records a stream map filtered out before the sinks.
    filtered_by_stream: dict[str, int]
    by_parent: list[dict[str, t.Any]]
    sample: list[dict[str, t.Any]]
    files: dict[str, str]


def build_report(staging: Staging, *, provider: str, dry_run: bool, counts: dict[str, int],
                 duration: float, calls: dict[str, int], waited: float,
                 status: str = "finished", error: str | None = None,
                 filtered: dict[str, int] | None = None,
                 crm_only_rejects: str | None = None) -> RunReport:
    """Assemble the report of the staging file's current run (``crm_only_rejects``: what
    only the CRM can refuse, said in a dry run's report)."""
    total_calls = sum(calls.values())
    return RunReport(
        run_id=staging.run_id, provider=provider, dry_run=dry_run,
        crm_only_rejects=crm_only_rejects if dry_run else None, status=status, error=error,
        started_at=staging.started_at().isoformat(), duration_seconds=round(duration, 3),
        counts=counts,
        rejects_by_reason=[{"reason": r, "records": n} for r, n in staging.reject_reasons()],
        api_calls_by_status=dict(sorted(calls.items())), api_calls=total_calls,
        api_calls_per_second=round(total_calls / duration, 2) if duration else 0.0,
        rate_limit_wait_seconds=round(waited, 3),
        filtered_by_stream=dict(sorted((filtered or {}).items())),
        by_parent=staging.by_parent(limit=20), sample=staging.sample(_SAMPLE), files={},
    )


def write_report(report: RunReport, staging: Staging, directory: str | pathlib.Path) -> RunReport:
    """Write ``run-<time>-<id>.json``, ``.md`` and ``.csv`` (every record's outcome)."""
    folder = pathlib.Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"run-{report['started_at'][:19].replace(':', '')}-{report['run_id'][:8]}"
    files = {"json": f"{stem}.json", "markdown": f"{stem}.md", "csv": f"{stem}.csv"}
    report = RunReport(**{**report, "files": files})  # type: ignore[typeddict-item]
    staging.export_outcomes(files["csv"])
    pathlib.Path(files["json"]).write_text(json.dumps(report, indent=2, default=str) + "\n")
    pathlib.Path(files["markdown"]).write_text(to_markdown(report))
    return report


def to_markdown(report: RunReport) -> str:
    """The report as a page a person reads."""
    verb = "planned (dry run: nothing was sent)" if report["dry_run"] else "done"
    counts = report["counts"]
    lines = [
        f"# crmphones run {report['run_id']}", "",
        f"{report['provider']}, {verb}; started {report['started_at']}, took "
        f"{report['duration_seconds']:.1f} s.", "",
        *([f"**{report['status'].capitalize()}**: {report['error']}", ""]
          if report["status"] != "finished" else []),
        *([f"Every check that needs no answer from the CRM was made; rejects only the CRM can "
           f"give are not in this plan: {report['crm_only_rejects']}.", ""]
          if report["crm_only_rejects"] else []),
        "| outcome | records |", "|---|---:|",
        f"| received | {counts['received']} |",
        *(f"| {name} | {counts[name]} |" for name in OUTCOMES), "",
        f"API calls: {report['api_calls']} ({report['api_calls_per_second']}/s); "
        f"waiting on rate limits: {report['rate_limit_wait_seconds']:.1f} s.", "",
    ]
    if report["api_calls_by_status"]:
        lines += ["| HTTP status | calls |", "|---|---:|",
                  *(f"| {k} | {v} |" for k, v in report["api_calls_by_status"].items()), ""]
    if report["filtered_by_stream"]:
        lines += ["## Filtered out by stream maps", "", "| stream | records |", "|---|---:|",
                  *(f"| {_cell(stream)} | {n} |"
                    for stream, n in report["filtered_by_stream"].items()), ""]
    if report["rejects_by_reason"]:
        lines += ["## Rejected, by reason", "", "| reason | records |", "|---|---:|",
                  *(f"| {_cell(r['reason'])} | {r['records']} |"
                    for r in report["rejects_by_reason"]), ""]
    if report["by_parent"]:
        lines += ["## By parent (most active first)", "",
                  "| parent | created | updated | unchanged | rejected |", "|---|---:|---:|---:|---:|",
                  *(f"| {p['parent_type']} {p['parent_id']} | {p['created']} | {p['updated']} | "
                    f"{p['unchanged']} | {p['rejected']} |" for p in report["by_parent"]), ""]
    if report["sample"]:
        lines += ["## Sample", "", "| outcome | parent | number | changes or reason |",
                  "|---|---|---|---|",
                  *(f"| {s['outcome']} | {s['parent_type']} {s['parent_id']} | "
                    f"{_cell(s['e164'] or s['number'])} | {_cell(s['changes'] or s['detail'])} |"
                    for s in report["sample"]), ""]
    if report["files"]:
        lines += [f"Every record's outcome: `{report['files']['csv']}`.", ""]
    return "\n".join(lines)


def _cell(value: t.Any) -> str:
    return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")
