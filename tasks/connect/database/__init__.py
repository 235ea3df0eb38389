"""The e-bill database behind one interface (base.EbillDatabase), one module per dialect."""
from __future__ import annotations

from config.hosts import DatabaseConfig
from tasks.connect.database.base import (
    CANONICAL_COLUMNS,
    CANONICAL_SCHEMA,
    DatabaseError,
    EbillDatabase,
    TablespaceUsage,
)

__all__ = ["connect", "EbillDatabase", "TablespaceUsage", "DatabaseError", "CANONICAL_COLUMNS", "CANONICAL_SCHEMA"]


def connect(cfg: DatabaseConfig) -> EbillDatabase:
    """A read-only session for the site's database.dialect (the connection opens on first use)."""
    if cfg.dialect == "postgresql":
        from tasks.connect.database.postgresql import PostgresEbillDatabase

        return PostgresEbillDatabase(cfg)
    if cfg.dialect == "oracle":
        from tasks.connect.database.oracle import OracleEbillDatabase

        return OracleEbillDatabase(cfg)
    raise ValueError(f"database.dialect {cfg.dialect!r} is not supported (hint: oracle or postgresql)")
