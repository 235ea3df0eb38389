"""parse_df_p on real-shaped `df -P -k` outputs of the servers hospitals run."""
from pathlib import Path

import pytest

from tasks.connect.df import MountUsage, parse_df_p

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "df"


def _read(name: str) -> list[MountUsage]:
    return parse_df_p((FIXTURES / name).read_text(encoding="utf-8"))


def test_rhel7_lvm_and_wrapped_nfs_name():
    rows = _read("rhel7_nfs_wrapped.txt")
    assert [r.mounted_on for r in rows] == ["/", "/dev", "/dev/shm", "/run", "/boot", "/u01", "/backup",
                                            "/data/layout archive", "/run/user/0"]
    root = rows[0]
    assert root == MountUsage("/dev/mapper/rhel-root", 52403200, 38912404, 13490796, 75.0, "/", "/")
    u01 = rows[5]
    assert (u01.filesystem, u01.size_kb, u01.used_kb, u01.avail_kb, u01.use_pct) == (
        "/dev/mapper/rhel-u01", 209612800, 190318232, 19294568, 91.0)
    nfs = rows[7]
    # The long NFS name sits alone on its line; its figures and a mount point with a space follow.
    assert nfs == MountUsage("nas-ebill-01.hospital.local:/export/ebill_layout_archive", 1073741824, 912680550,
                             161061274, 85.0, "/data/layout archive", "/data/layout archive")
    assert rows[-1].filesystem == "tmpfs" and rows[-1].use_pct == 0.0


def test_kylin_v10_chinese_header():
    rows = _read("kylin_v10_zh.txt")
    assert len(rows) == 9
    by_mount = {r.mounted_on: r for r in rows}
    assert by_mount["/"] == MountUsage("/dev/mapper/klas-root", 104806400, 43290112, 61516288, 42.0, "/", "/")
    assert by_mount["/opt"].filesystem == "/dev/mapper/klas-opt"
    assert (by_mount["/opt"].used_kb, by_mount["/opt"].avail_kb, by_mount["/opt"].use_pct) == (168743040, 40869760, 81.0)
    assert by_mount["/dev/shm"].use_pct == 1.0


def test_plain_with_dash_values():
    rows = _read("plain.txt")
    assert rows[0] == MountUsage("/dev/vda2", 41152736, 9874320, 29164700, 26.0, "/", "/")
    assert rows[1] == MountUsage("/dev/vdb1", 515928320, 4120, 489693592, 1.0, "/data", "/data")
    assert rows[2] == MountUsage("proc", 0, 0, 0, 0.0, "/proc", "/proc")


def test_percentage_computed_when_df_prints_dash():
    text = "Filesystem 1024-blocks Used Available Capacity Mounted on\nfuse.x 1000 250 750 - /mnt/x\n"
    assert parse_df_p(text)[0].use_pct == 25.0


def test_header_only_is_empty():
    assert parse_df_p("Filesystem     1024-blocks Used Available Capacity Mounted on\n") == []


@pytest.mark.parametrize("text, words", [
    ("Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/sda1 10G 5G 5G 50% /\n", "line 2"),
    ("Filesystem 1024-blocks Used Available Capacity Mounted on\nnas:/export/very/long\n", "without its figures"),
    ("Filesystem 1024-blocks Used Available Capacity Mounted on\nnas:/export\ngarbage here\n", "expected the figures"),
])
def test_unparseable_output_names_the_line(text, words):
    with pytest.raises(ValueError, match=words):
        parse_df_p(text)
