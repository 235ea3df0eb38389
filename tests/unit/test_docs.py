"""The repository's own docs stay true: every path docs/architecture.md's folder table names exists,
and every `docs/…` page the code, the SQL scripts, the site files and the README cite is in docs/."""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ARCH = REPO / "docs" / "architecture.md"
CITING = ("flows", "tasks", "config", "deployments", "sandbox", "bench", "tests", "expectations")
SUFFIXES = {".py", ".sql", ".md", ".yaml", ".j2", ".json", ".toml"}
_DOC_REF = re.compile(r"(?<![\w./])(?:\.\./)*(?:shared/)?docs/[\w./-]+\.md")


_MODULE = re.compile(r"^[\w.-]+(?:/[\w.-]+)*(?:\.py|\.j2|/)$")


def table_paths(text: str) -> list[str]:
    """The backquoted paths in the first column of the folder table under '## The parts', and the
    modules a folder's row names in its second column (`x.py`, `sub/`: relative to that folder)."""
    section = text.split("## The parts", 1)[1].split("\n## ", 1)[0]
    paths = []
    for line in section.splitlines():
        if line.startswith("| `"):
            cells = line.strip().strip("|").split(" | ")
            named = re.findall(r"`([^`]+)`", cells[0])
            paths += named
            if len(named) == 1 and named[0].endswith("/") and named[0] != "tests/" and len(cells) > 1:
                paths += [named[0] + m for m in re.findall(r"`([^`]+)`", cells[1]) if _MODULE.match(m)]
    return paths


def citing_files() -> list[Path]:
    files = [REPO / "README.md", REPO / "ebops_cli.py", REPO / "Makefile"]
    for folder in CITING:
        files += [p for p in (REPO / folder).rglob("*") if p.suffix in SUFFIXES and p.is_file()]
    return [f for f in files if f.name != "test_docs.py"]


def doc_refs(files: list[Path]) -> dict[str, list[str]]:
    refs: dict[str, list[str]] = {}
    for f in files:
        for ref in _DOC_REF.findall(f.read_text(encoding="utf-8", errors="replace")):
            refs.setdefault(ref, []).append(str(f.relative_to(REPO)))
    return refs


def test_the_folder_table_names_only_paths_that_exist():
    paths = table_paths(ARCH.read_text(encoding="utf-8"))
    assert len(paths) >= 40 and {"flows/", "tasks/", "config/", "sandbox/", "deployments/", "expectations/",
                                 "bench/", "tests/"} <= set(paths)
    missing = [p for p in paths if not (REPO / p).exists()]
    assert missing == [], f"docs/architecture.md names paths that do not exist: {missing}"


def test_every_docs_page_the_code_cites_is_in_the_repository():
    refs = doc_refs(citing_files())
    assert "docs/ebill-reference-schema.md" in refs and "docs/architecture.md" in refs   # the scan sees them
    outside = {r: where for r, where in refs.items() if not r.startswith("docs/")}
    assert outside == {}, f"pages cited outside the repository: {outside}"
    missing = {r: where for r, where in refs.items() if not (REPO / r).is_file()}
    assert missing == {}, f"cited pages missing from docs/: {missing}"


def test_architecture_md_is_cited_by_its_path():
    bare = [str(f.relative_to(REPO)) for f in citing_files()
            if re.search(r"(?<![\w/])architecture\.md", f.read_text(encoding="utf-8", errors="replace"))]
    assert bare == [], f"cite docs/architecture.md, not a bare architecture.md: {bare}"


def test_the_checks_find_what_is_wrong(tmp_path):
    text = ("## The parts\n\n| path | holds |\n|---|---|\n| `flows/`, `no/such.py` | x |\n"
            "| `tasks/core/` | `results.py` (the model), `gone.py`, `{env: …}` | y |\n\n## Next\n| `not/here` | y |\n")
    assert table_paths(text) == ["flows/", "no/such.py", "tasks/core/", "tasks/core/results.py", "tasks/core/gone.py"]
    f = tmp_path / "m.py"
    f.write_text("# see ../shared/docs/duties.md and docs/x.md, not mydocs/y.md\n")
    assert _DOC_REF.findall(f.read_text()) == ["../shared/docs/duties.md", "docs/x.md"]
