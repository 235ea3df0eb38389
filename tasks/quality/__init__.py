"""Invoice data quality (DQ01-DQ22): GX suites in expectations/, run over the canonical relations."""
