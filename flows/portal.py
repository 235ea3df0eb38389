"""证据门户 (evidence portal): rebuild a site's static HTML index in the evidence bucket, daily.

The portal's links are presigned and live at most 7 days (tasks/evidence/portal.py), so a daily
rebuild keeps every link an auditor was given working: the portal's own link (same key) opens
today's page, whose links to reports and files are fresh. The run records the link in a Prefect
artifact (as the duties record their report's link) and ends Failed when a bundle fails
verification, after the portal, which shows it, has been written.
"""
from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from config.settings import load_site
from flows.common import outbox_dir
from tasks.evidence.portal import MAX_HOURS, PortalBuild, build_and_publish


class PortalShowsFailures(RuntimeError):
    """Raised after the portal is written: some bundle failed verification."""


@flow(name="evidence-portal", log_prints=False)
def evidence_portal(site: str, hours: int = MAX_HOURS) -> PortalBuild:
    cfg = load_site(site)
    outbox = outbox_dir(cfg)   # on the worker: its chain heads also catch a rewritten newest bundle
    built = build_and_publish(cfg.evidence, cfg.site, cfg.name, cfg.timezone, hours,
                              outbox=outbox if outbox.is_dir() else None)
    logger = get_run_logger()
    logger.info("portal %s written: %d bundles, %d failing verification", built.key, built.bundles, len(built.failing))
    failing = "\n".join(f"- `{p}`" for p in built.failing) or "无"
    create_markdown_artifact(
        key=f"evidence-portal-{cfg.site}".lower().replace("_", "-"),
        markdown=(f"## {cfg.name} 运维证据门户\n\n[打开证据门户]({built.url})（链接有效期至 {built.valid_until_local}）\n\n"
                  f"证据包 {built.bundles} 个；校验未通过：\n{failing}\n"),
        description=f"evidence portal s3://{cfg.evidence.bucket}/{built.key}")
    if built.failing or built.missing:
        raise PortalShowsFailures(f"{len(built.failing) + built.missing} bundle(s) of {cfg.site} fail verification; "
                                  f"the portal shows which")
    return built
