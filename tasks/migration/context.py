"""What the phases of one migration run share: the site, its `migration:` section, the SSH pool,
the journal and the facts earlier phases measured (kept in the journal, so a resumed run has them)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from config.migration import MigrationConfig
from config.settings import Site
from tasks.connect.ssh import HostPool, HostSession
from tasks.migration.journal import Journal


@dataclass
class Migration:
    site: Site
    run_id: str
    engineer: str
    pool: HostPool
    journal: Journal
    facts: dict[str, Any] = field(default_factory=dict)   # phase facts, merged in phase order
    files: dict[str, str] = field(default_factory=dict)   # extra files of the evidence bundle

    @property
    def cfg(self) -> MigrationConfig:
        assert self.site.migration is not None
        return self.site.migration

    def session(self, host: str) -> HostSession:
        return self.pool.get(self.site.any_host(host))

    def after_site(self) -> Site:
        """The site as it is after the cut-over, for the smoke test's inspection: the new servers
        (after_hosts), the target database for the read-only account, the target's health URLs."""
        cfg = self.cfg
        names = cfg.after_hosts or [{cfg.source.db_host: cfg.target.db_host, cfg.source.app_host: cfg.target.app_host}
                                    .get(h.name, h.name) for h in self.site.hosts]
        update: dict[str, Any] = {"hosts": [self.site.any_host(n) for n in names]}
        if cfg.target.inspection_dsn:
            new_db: dict[str, Any] = {"dsn": cfg.target.inspection_dsn}
            if cfg.across_engines:   # the inspection reads the new engine in its dialect; unquoted names fold lower
                views = self.site.database.schema_name
                new_db.update(dialect=cfg.target.engine, schema_name=views.lower() if views else views)
            update["database"] = self.site.database.model_copy(update=new_db)
        if self.site.health is not None and cfg.target.health_urls:
            update["health"] = self.site.health.model_copy(update={"urls": dict(cfg.target.health_urls)})
        return self.site.model_copy(update=update)
