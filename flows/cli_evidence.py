"""`ebops evidence list | show | get | verify | url`: what an auditor does with the evidence bucket.

Every command takes the site (`--site/-s`: its name or site file), whose `evidence:` section names the
store; `--site-id` picks another site id inside that bucket (default: every site id / the file's own). Errors
a user can fix (site file, missing secret, store down, no such bundle) are one line with a hint and
exit code 2; `verify` exits 1 when the chain is broken and 0 when it is intact.
"""
from __future__ import annotations

import json
from datetime import timedelta
from functools import wraps
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from flows.cli_output import FormatOpt, OutputFormat, emit, make_console, print_table

evidence_app = typer.Typer(no_args_is_help=True, add_completion=False,
                           help="auditors: list, show, get, verify, url")
console = make_console()
err = make_console(stderr=True)

SiteOpt = typer.Option(..., "--site", "-s", help="site name (config/sites/NAME.yaml) or path of a site file")


def _fail(message: str, hint: str) -> None:
    err.print(f"[bold red]error:[/] {message}  [dim]hint: {hint}[/]")
    raise typer.Exit(2)


def site_or_exit(site_name: str):
    """The site, or its site file's first problem as one line with its hint (exit code 2): the
    evidence, approvals and portal commands read the site the same way."""
    from config.problems import SiteConfigError
    from config.settings import load_site

    try:
        return load_site(site_name)
    except SiteConfigError as exc:
        first = exc.problems[0]
        _fail(f"site {site_name}: {first.file}: {first.field or '(file)'}: {first.message}",
              first.hint or "run `ebops config check`")


def _store_cfg(site_name: str):
    return site_or_exit(site_name).evidence


def _friendly(fn):
    """Turn the errors an auditor can act on into one line and exit code 2."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        from minio.error import S3Error

        from config.settings import SecretMissing
        from tasks.evidence.store import StoreUnreachable

        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except SecretMissing as exc:
            _fail(f"the evidence store's key is not available: {exc}", "for the sandbox: eval $(ebops sandbox env)")
        except StoreUnreachable as exc:
            _fail(str(exc), "is the store running? for the sandbox: ebops sandbox up")
        except S3Error as exc:
            hint = {"NoSuchKey": "check the prefix with `ebops evidence list`",
                    "NoSuchBucket": "check `evidence.bucket` in the site file",
                    "AccessDenied": "check the access key and its rights",
                    "SignatureDoesNotMatch": "check the secret key",
                    "InvalidAccessKeyId": "check the access key"}.get(exc.code, "see the store's log")
            _fail(f"the evidence store answered {exc.code}: {exc.message} ({exc.object_name or exc.bucket_name or ''})", hint)

    return wrapper


@evidence_app.command("list")
@_friendly
def list_cmd(site_file: str = SiteOpt, site: Optional[str] = typer.Option(None, "--site-id", help="site id in the bucket"),
             duty: Optional[str] = typer.Option(None, "--duty"), year: Optional[int] = typer.Option(None, "--year"),
             period: Optional[str] = typer.Option(None, "--period"), fmt: OutputFormat = FormatOpt) -> None:
    """The bundles in the store (read from their manifests)."""
    from tasks.evidence.verify import list_bundles

    bundles = list_bundles(_store_cfg(site_file), site=site, duty=duty, year=year, period=period)
    columns = ("#", "prefix", "period", "verdict", "started", "files", "manifest sha256")
    # Whole keys and hashes: an auditor copies the prefix into `show`, `get` and `url`, and
    # compares the manifest's hash with the next bundle's predecessor.
    rows = [(b.sequence, b.prefix, b.period, b.verdict, b.started_at, b.files, b.manifest_sha256) for b in bundles]
    data = [dict(zip(("sequence", "prefix", "period", "verdict", "started_at", "files", "manifest_sha256"), r))
            for r in rows]
    emit(fmt, console, title=f"evidence bundles ({len(bundles)})", columns=columns, rows=rows, data=data,
         no_wrap=("prefix",))


@evidence_app.command("show")
@_friendly
def show_cmd(prefix: str = typer.Argument(..., help="bundle prefix as `list` shows it"), site_file: str = SiteOpt) -> None:
    """A bundle's manifest."""
    from tasks.evidence.verify import show

    console.print_json(json.dumps(show(_store_cfg(site_file), prefix), ensure_ascii=False))


@evidence_app.command("get")
@_friendly
def get_cmd(prefix: str = typer.Argument(...), site_file: str = SiteOpt,
            dest: Path = typer.Option(Path("."), "--dest", help="folder to download into")) -> None:
    """Download a bundle (all files and the manifest)."""
    from tasks.evidence.verify import get

    paths = get(_store_cfg(site_file), prefix, dest)
    if not paths:
        _fail(f"no objects under {prefix}", "check the prefix with `ebops evidence list`")
    for p in paths:
        console.print(str(p))


def _site_outbox(site_name: str) -> Path | None:
    """The site's outbox when it exists here, i.e. when verify runs on the worker (flows.common.outbox_dir)."""
    from config.settings import load_site

    site = load_site(site_name)
    p = Path(site.evidence.outbox)
    if not p.is_absolute() and site.source is not None:
        p = site.source.parent / p
    return p.resolve() if p.is_dir() else None


@evidence_app.command("verify")
@_friendly
def verify_cmd(site_file: str = SiteOpt, site: Optional[str] = typer.Option(None, "--site-id", help="site id in the bucket"),
               duty: Optional[str] = typer.Option(None, "--duty"),
               local: bool = typer.Option(True, "--local/--no-local", help="also compare with this worker's chain heads"),
               fmt: str = typer.Option("table", "--format", help="table or json (one object per problem, with its code)"),
               checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="a signed checkpoint file (`ebops evidence "
                                                         "checkpoint`): also prove every bundle up to it is still there, unchanged")) -> None:
    """Recompute every file's SHA-256, check the manifest chain and signatures; exit 1 on any problem."""
    from tasks.evidence.judge import Problem
    from tasks.evidence.verify import verify

    if fmt not in ("table", "json"):
        _fail(f"--format {fmt}: unknown format", "use table or json")
    cp = _read_checkpoint(checkpoint) if checkpoint else None
    cfg = _store_cfg(site_file)
    report = verify(cfg, site=site, duty=duty, outbox=_site_outbox(site_file) if local else None)
    if cp is not None:
        from tasks.evidence.checkpoint import verify_checkpoint

        found = [Problem(p.prefix, p.code, p.detail) for p in verify_checkpoint(cfg, cp)]
        seen = {(p.prefix, p.code) for p in report.problems}
        report.problems += [p for p in found if (p.prefix, p.code) not in seen]
        report.ok = report.ok and not found
    if fmt == "json":
        print(json.dumps({"ok": report.ok, "bundles_checked": report.bundles_checked,
                          "problems": [p.__dict__ for p in report.problems]}, ensure_ascii=False, indent=2))
        raise typer.Exit(0 if report.ok else 1)
    if report.ok and not report.problems:
        console.print(f"[green]chain intact[/]: {report.bundles_checked} bundles checked, every file matches its manifest")
        raise typer.Exit(0)
    colour = "green" if report.ok else "red"
    table = Table(title=f"[{colour}]evidence problems[/] ({len(report.problems)}, {report.bundles_checked} bundles checked)")
    table.add_column("bundle", no_wrap=True)  # an auditor needs the whole key
    for col in ("code", "severity", "detail"):
        table.add_column(col, overflow="fold")
    for p in report.problems:
        table.add_row(p.prefix, p.code, p.severity, p.detail)
    print_table(console, table)
    if report.ok:
        console.print(f"[green]chain intact[/] apart from the warnings above: {report.bundles_checked} bundles checked")
    raise typer.Exit(0 if report.ok else 1)


def _read_checkpoint(path: Path) -> dict:
    from tasks.evidence.checkpoint import CheckpointError, load_checkpoint

    try:
        return load_checkpoint(path.read_bytes())
    except OSError as exc:
        _fail(f"checkpoint {path}: {exc.strerror or exc}", "give the checkpoint.json the hospital kept")
    except CheckpointError as exc:
        _fail(f"checkpoint {path}: {exc}", "give the checkpoint.json of a monthly inspection or `ebops evidence checkpoint`")


@evidence_app.command("checkpoint")
@_friendly
def checkpoint_cmd(site_file: str = SiteOpt, site: Optional[str] = typer.Option(None, "--site-id", help="site id in the bucket "
                                                                                   "(default: the site file's)"),
                   out: Path = typer.Option(..., "--out", "-o", help="file to write the signed checkpoint to")) -> None:
    """A signed checkpoint of every chain of the site (newest sequence, newest manifest, root hash) to keep."""
    from config.settings import load_site
    from tasks.evidence.checkpoint import CheckpointError, checkpoint_bytes, make_checkpoint

    cfg = _store_cfg(site_file)
    try:
        cp = make_checkpoint(cfg, site or load_site(site_file).site)
    except CheckpointError as exc:
        _fail(str(exc), "the checkpoint is signed with evidence.signing.private_key of the site file")
    out.write_bytes(checkpoint_bytes(cp))
    console.print(f"checkpoint of {len(cp['chains'])} chains written to {out}: root {cp['root_sha256']} "
                  f"(signed by {cp['signature']['public_key']})", soft_wrap=True, highlight=False)


@evidence_app.command("url")
@_friendly
def url_cmd(prefix: str = typer.Argument(...), site_file: str = SiteOpt,
            file: str = typer.Option("report.html", "--file"), hours: int = typer.Option(24, "--hours", min=1, max=168)) -> None:
    """A presigned link to one file of a bundle (checked to exist first)."""
    from tasks.evidence.store import open_store

    cfg = _store_cfg(site_file)
    key = (prefix if prefix.endswith("/") else prefix + "/") + file
    store = open_store(cfg)
    if not store.exists(key):
        _fail(f"no object {key}", "check the prefix with `ebops evidence list` and the file with `show`")
    console.print(store.presigned(key, timedelta(hours=hours)), soft_wrap=True)


@evidence_app.command("public-key")
def public_key_cmd(env: str = typer.Option(..., "--env", help="environment variable holding the worker's private key")) -> None:
    """The public key (and fingerprint) for `evidence.signing.public_key`, from the worker's private key."""
    import os

    from tasks.evidence.sign import SigningKeyUnusable, fingerprint, load_private_key, public_key_b64

    if not os.environ.get(env):
        _fail(f"environment variable {env} is not set", "export the worker's key (PEM, or base64 of the 32-byte seed)")
    try:
        public = public_key_b64(load_private_key(os.environ[env]))
    except SigningKeyUnusable as exc:
        _fail(f"{env}: {exc}", "give a PEM Ed25519 key, or base64 of 32 random bytes")
    console.print(f"public_key: \"{public}\"  # {fingerprint(public)}", soft_wrap=True, highlight=False)
