"""`ebops yearend extract SITE BILL_CODE BILL_NUMBER [--dest DIR]`: one layout (版式) file back from the
year-end month archives on the file server, byte-identical (its SHA-256 is checked against the
archive's member list), e.g. when a payer or an auditor asks for an old bill's PDF/OFD.

The file is a bill as the payer received it, with the payer's name: it goes to the folder the
engineer names and nowhere else (not into logs or evidence). Reading only: nothing on the server changes, so no plan or approval is needed. The `yearend`
command group (flows/cli_yearend.py) mounts it with `register(yearend_app)`.
"""
from __future__ import annotations

from pathlib import Path

import typer

from config.problems import SiteConfigError
from flows.cli_output import make_console

console = make_console()
err = make_console(stderr=True)


def yearend_extract(site: str = typer.Argument(..., help="site name (config/sites/NAME.yaml)"),
                    bill_code: str = typer.Argument(..., help="票据代码, 8 digits"),
                    bill_number: str = typer.Argument(..., help="票据号码, 10 digits"),
                    dest: Path = typer.Option(Path("."), "--dest", help="folder the file is written into")) -> None:
    """Extract one layout file by bill code and number from the year-end archives (else the original)."""
    raise typer.Exit(run_extract(site, bill_code, bill_number, dest))


def run_extract(site: str, bill_code: str, bill_number: str, dest: Path) -> int:
    """0 written; 1 not found or the server failed; 2 bad input (one line each, never a traceback)."""
    from config.settings import load_site
    from tasks.connect.ssh import HostError
    from tasks.yearend.files import YearEndFilesError, extract

    try:
        cfg = load_site(site)
        dest = Path(dest)
        if dest.exists() and not dest.is_dir():
            raise YearEndFilesError(f"--dest {dest} is a file (hint: give a folder)")
        path = extract(cfg, bill_code, bill_number, dest)
    except SiteConfigError as exc:
        for p in exc.problems:
            err.print(f"[red]config:[/] {p}")
        return 2
    except YearEndFilesError as exc:
        err.print(f"[red]yearend extract:[/] {exc}")
        return 2
    except FileNotFoundError as exc:
        err.print(f"[red]not found:[/] {exc}")
        return 1
    except HostError as exc:
        err.print(f"[red]file server:[/] {exc}")
        return 1
    console.print(f"{path}  ({path.stat().st_size} bytes, SHA-256 checked against the archive's member list)")
    return 0


def register(group: typer.Typer) -> None:
    """Mount the command as `extract` on the `yearend` group."""
    group.command("extract")(yearend_extract)
