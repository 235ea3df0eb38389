"""`ebops portal SITE` and `ebops evidence export SITE`: the evidence for people without ebill-ops.

`portal` builds the site's self-contained HTML index (tasks/evidence/portal.py) from the bucket,
with each bundle's verification status as of now, writes it to `_portal/<site>/index.html` and
prints one presigned link that opens it (exit 1 when a bundle fails verification: the portal is
still written, and says so). `evidence export` writes a period to a folder (and zip) with a
stand-alone verification script (tasks/evidence/export.py). Errors a user can fix are one line
with a hint and exit code 2, as in flows/cli_evidence.py.
"""
from __future__ import annotations

from datetime import date
from pathlib import Path

import typer

from flows.cli_evidence import _fail, _friendly, site_or_exit, _site_outbox, console, evidence_app, err




def _day(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        _fail(f"{option} {value}: not a date", "use YYYY-MM-DD, e.g. 2026-11-01")


@_friendly
def portal(site: str = typer.Argument(..., help="site name (config/sites/NAME.yaml) or path of a site file"),
           hours: int = typer.Option(168, "--hours", min=1, max=168,
                                     help="how long the portal's link and its links to files stay valid (S3 max 168)")) -> None:
    """Build the evidence portal of SITE in its bucket and print the presigned link that opens it."""
    from tasks.evidence.portal import build_and_publish

    cfg = site_or_exit(site)
    built = build_and_publish(cfg.evidence, cfg.site, cfg.name, cfg.timezone, hours, outbox=_site_outbox(site))
    console.print(f"portal: s3://{cfg.evidence.bucket}/{built.key} ({built.bundles} bundles, links valid until "
                  f"{built.valid_until_local} {cfg.timezone})", soft_wrap=True, highlight=False)
    console.print(built.url, soft_wrap=True, highlight=False)
    bad = len(built.failing) + built.missing
    if bad:
        err.print(f"[red]{bad} bundle(s) fail verification[/] (shown in the portal): " + ", ".join(built.failing[:5]),
                  soft_wrap=True, highlight=False)
    raise typer.Exit(1 if bad else 0)


@evidence_app.command("export")
@_friendly
def export_cmd(site: str = typer.Argument(..., help="site name (config/sites/NAME.yaml) or path of a site file"),
               date_from: str = typer.Option(..., "--from", help="first day (YYYY-MM-DD, the site's timezone)"),
               date_to: str = typer.Option(..., "--to", help="last day, inclusive"),
               dest: Path = typer.Option(..., "--dest", help="folder to write the export into"),
               make_zip: bool = typer.Option(False, "--zip", help="also write the folder as a .zip beside it")) -> None:
    """A period's bundles as a folder an auditor verifies offline with `python3 verify_evidence.py`."""
    from tasks.evidence.export import ExportError, export_period

    cfg = site_or_exit(site)
    try:
        result = export_period(cfg.evidence, cfg.site, cfg.timezone, _day(date_from, "--from"), _day(date_to, "--to"),
                               dest, make_zip)
    except ExportError as exc:
        _fail(str(exc), "choose another --dest or period")
    console.print(f"{len(result.bundles)} bundles exported to {result.folder}", soft_wrap=True, highlight=False)
    if result.zip_path:
        console.print(f"zip: {result.zip_path}", soft_wrap=True, highlight=False)
    console.print(f"verify offline: cd {result.folder} && python3 verify_evidence.py", soft_wrap=True, highlight=False)
    if not result.bundles:
        err.print("[yellow]no bundle started in that period[/]")
