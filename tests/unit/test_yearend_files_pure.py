"""year_end.files settings and the pure parts of tasks/yearend/files.py (no SSH)."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from config.settings import Site
from config.year_end import YearEndFiles
from tasks.yearend.files import MonthFolder, months_to_pack, parse_archive_output


def _site(**files) -> dict:
    return {
        "site": "t", "name": "测试医院",
        "database": {"dialect": "oracle", "dsn": "h:1521/s", "user": "ro", "password": {"env": "NONE"}},
        "evidence": {"endpoint": "127.0.0.1:1", "bucket": "none", "access_key": {"env": "NONE"},
                     "secret_key": {"env": "NONE"}},
        "hosts": [{"name": "fs1", "role": "file", "address": "10.0.0.5", "user": "ebops", "key_file": "/k",
                   "known_hosts": "/kh"}],
        "year_end": {"files": {"host": "fs1", "layout_root": "/data/layout", "archive_dir": "/data/archive", **files}},
    }


def test_defaults_keep_originals_and_pack_tar_gz():
    files = Site.model_validate(_site()).year_end.files
    assert (files.remove_originals, files.archive_format, files.keep_full_years) == (False, "tar.gz", 2)


@pytest.mark.parametrize("change,field", [({"layout_root": "data/layout"}, "layout_root"),
                                          ({"archive_dir": "archive"}, "archive_dir"),
                                          ({"archive_format": "rar"}, "archive_format"),
                                          ({"host": "nas9"}, "nas9")])
def test_bad_settings_are_refused_naming_the_field(change, field):
    with pytest.raises(ValidationError) as exc:
        Site.model_validate(_site(**change))
    assert field in str(exc.value)


def test_months_older_than_two_full_years_including_archived_ones():
    cfg = YearEndFiles(host="fs1", layout_root="/l", archive_dir="/a")
    months = [MonthFolder(m, 3, 100) for m in ("2023/12", "2024/01", "2024/12", "2025/01", "2026/11")]
    archives = {"layout-2022-03.tar.gz", "layout-2022-03.tar.gz.sha256", "other.tar.gz"}
    assert months_to_pack(cfg, 2026, months, archives) == ["2022/03", "2023/12", "2024/01", "2024/12"]
    assert months_to_pack(cfg.model_copy(update={"keep_full_years": 3}), 2026, months, archives) == ["2022/03", "2023/12"]


def test_archive_report_parsed_into_members_with_sha256_and_size():
    out = ("#members\n" + "a" * 64 + "  2024/01/4401012400001.ofd\n" + "b" * 64 + "  2024/01/4401012400002.pdf\n"
           "#sizes\n812 2024/01/4401012400001.ofd\n190 2024/01/4401012400002.pdf\n#archive 1234\n")
    facts = parse_archive_output(out)
    assert facts["members"] == [{"path": "2024/01/4401012400001.ofd", "sha256": "a" * 64, "size": 812},
                                {"path": "2024/01/4401012400002.pdf", "sha256": "b" * 64, "size": 190}]
    assert (facts["member_count"], facts["member_bytes"], facts["archive_bytes"]) == (2, 1002, 1234)


def test_plan_scripts_read_as_they_run():
    """shlex.quote leaves a script without single quotes as the script between two quotes: the
    reviewer of the plan reads exactly what runs, not a '"'"' salad."""
    import shlex

    from tasks.yearend import file_scripts

    for name in ("ARCHIVE", "REMOVE", "VERIFY", "REMAINING"):
        script = getattr(file_scripts, name)
        assert "'" not in script, name
        assert shlex.quote(script) == f"'{script}'"
