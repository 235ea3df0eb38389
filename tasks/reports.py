"""Reports for the hospital, in Chinese, rendered from Jinja2 templates (tasks/templates/).

One template per report form and per format (HTML for reading and printing, Markdown for the
Prefect UI and e-mail). Templates receive plain data, so a report can be re-rendered from a
bundle's result.json years later.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from tasks.results import CheckResult, Status

TEMPLATES = Path(__file__).resolve().parent / "templates"

_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html", "html.j2"]),  # every HTML report escapes its data
    undefined=StrictUndefined,  # a missing field is a bug in the flow, not an empty cell
    trim_blocks=True,
    lstrip_blocks=True,
)


def local_time(value: datetime, tz: str, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """Times in reports are in the site's timezone, whatever the worker machine's timezone is."""
    return value.astimezone(ZoneInfo(tz)).strftime(fmt)


def format_value(r: CheckResult) -> str:
    if r.value is None:
        return "—"
    if isinstance(r.value, float):
        text = f"{r.value:,.1f}"
    else:
        text = str(r.value)
    return f"{text} {r.unit}".strip()


_env.filters["status_zh"] = lambda s: Status(s).label_zh
_env.filters["value"] = format_value


def render(template: str, **context) -> str:
    return _env.get_template(template).render(**context)


def render_both(form: str, **context) -> dict[str, str]:
    """{'report.html': ..., 'report.md': ...} for the form `form` (e.g. 'inspection')."""
    return {
        "report.html": render(f"{form}.html.j2", **context),
        "report.md": render(f"{form}.md.j2", **context),
    }
