"""The official holiday calendar, checked against the State Council's 2025 and 2026 arrangements.

Facts asserted here are from 国务院办公厅关于2025年/2026年部分节假日安排的通知 and were
confirmed against chinesecalendar 1.11.0 before being written down.
"""
from __future__ import annotations

import textwrap
from datetime import date
from pathlib import Path

import pytest

from tasks.core.holiday_files import HolidayFileError
from tasks.core.calendar import (
    CalendarGap,
    Holiday,
    coverage,
    first_workday_of_month,
    is_workday,
    long_holidays,
    next_long_holiday,
    workdays_before,
)


@pytest.fixture
def holidays_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EBOPS_HOLIDAYS_DIR", str(tmp_path))
    return tmp_path


def write(directory: Path, year: int, body: str) -> None:
    (directory / f"{year}.yaml").write_text(textwrap.dedent(body), encoding="utf-8")


# ---------------------------------------------------------------- 2025, from the package
def test_2025_spring_festival_and_its_make_up_workdays():
    assert Holiday("春节", date(2025, 1, 28), date(2025, 2, 4), 8) in long_holidays(date(2025, 1, 1), date(2025, 2, 28))
    for make_up in (date(2025, 1, 26), date(2025, 2, 8)):   # a Sunday and a Saturday worked
        assert make_up.weekday() >= 5 and is_workday(make_up)
    assert not is_workday(date(2025, 1, 28)) and not is_workday(date(2025, 2, 4)) and is_workday(date(2025, 2, 5))


def test_2025_national_day_and_mid_autumn_form_one_eight_day_holiday():
    [golden_week] = long_holidays(date(2025, 9, 15), date(2025, 10, 31))
    assert golden_week == Holiday("国庆节、中秋节", date(2025, 10, 1), date(2025, 10, 8), 8)
    assert is_workday(date(2025, 9, 28)) and is_workday(date(2025, 10, 11))
    assert first_workday_of_month(2025, 10) == date(2025, 10, 9)


# ---------------------------------------------------------------- 2026, from the package
def test_2026_spring_festival_nine_days_and_its_pre_check():
    spring = next_long_holiday(date(2026, 2, 1))
    assert spring == Holiday("春节", date(2026, 2, 15), date(2026, 2, 23), 9)
    assert is_workday(date(2026, 2, 14)) and is_workday(date(2026, 2, 28))   # Saturdays worked
    # The make-up Saturday is the last working day before the holiday, so it counts as the first.
    assert workdays_before(date(2026, 2, 15), 1) == date(2026, 2, 14)
    assert workdays_before(spring.first_day, 2) == date(2026, 2, 13)
    assert workdays_before(spring.first_day, 3) == date(2026, 2, 12)


def test_2026_national_day_is_separate_from_mid_autumn():
    autumn = long_holidays(date(2026, 9, 1), date(2026, 10, 31))
    assert autumn == [
        Holiday("中秋节", date(2026, 9, 25), date(2026, 9, 27), 3),
        Holiday("国庆节", date(2026, 10, 1), date(2026, 10, 7), 7),
    ]
    assert is_workday(date(2026, 9, 20)) and is_workday(date(2026, 10, 10))
    assert workdays_before(autumn[1].first_day, 2) == date(2026, 9, 29)   # 9-30 and 9-29 are the last workdays
    assert workdays_before(autumn[0].first_day, 2) == date(2026, 9, 23)


def test_new_years_day_2026_is_a_three_day_holiday_and_ordinary_weekends_are_not():
    assert long_holidays(date(2025, 12, 20), date(2026, 1, 10)) == [Holiday("元旦", date(2026, 1, 1), date(2026, 1, 3), 3)]
    assert first_workday_of_month(2026, 1) == date(2026, 1, 4)   # a Sunday worked (调休上班)
    # March 2026 has only ordinary weekends: days off, but no holiday, even at min_days=2.
    assert not is_workday(date(2026, 3, 7)) and not is_workday(date(2026, 3, 8))
    assert long_holidays(date(2026, 3, 1), date(2026, 3, 31), min_days=2) == []


def test_a_holiday_already_under_way_is_not_the_next_one():
    assert next_long_holiday(date(2026, 2, 16)) == Holiday("清明节", date(2026, 4, 4), date(2026, 4, 6), 3)
    assert [h.name for h in long_holidays(date(2026, 2, 20), date(2026, 4, 30))] == ["清明节"]


def test_workdays_before_refuses_a_non_positive_count():
    with pytest.raises(ValueError, match="n must be >= 1"):
        workdays_before(date(2026, 3, 2), 0)


# ---------------------------------------------------------------- 2027: template only
def test_2027_template_is_refused_for_workdays_and_reported_by_coverage():
    with pytest.raises(CalendarGap, match="template"):
        is_workday(date(2027, 3, 1))   # a day the template does not list
    with pytest.raises(CalendarGap, match="template"):
        is_workday(date(2027, 1, 1))   # a statutory day the template does list
    ok, years, reason = coverage(date(2026, 11, 26), 12)
    assert (ok, years) == (False, [2027]) and "2027" in reason and "template" in reason
    assert coverage(date(2025, 1, 1), 11)[0] is True


def test_2027_template_sketches_holidays_marked_unofficial():
    new_year = next_long_holiday(date(2026, 11, 26))
    assert new_year == Holiday("元旦", date(2027, 1, 1), date(2027, 1, 3), 3, official=False)
    assert workdays_before(new_year.first_day, 2) == date(2026, 12, 30)   # the days before lie in covered 2026
    spring = next_long_holiday(date(2027, 1, 10))
    assert spring is not None and spring.name == "春节" and spring.first_day == date(2027, 2, 5)
    with pytest.raises(CalendarGap):   # its pre-check would fall on a guessed 2027 day
        workdays_before(spring.first_day, 2)


def test_a_year_without_any_data_is_a_gap(holidays_dir: Path):
    with pytest.raises(CalendarGap, match="does not exist"):
        is_workday(date(2027, 1, 4))
    with pytest.raises(CalendarGap):
        long_holidays(date(2027, 1, 1), date(2027, 2, 28))
    ok, years, reason = coverage(date(2026, 11, 26), 12)
    assert not ok and years == [2027] and "无节假日数据" in reason


# ---------------------------------------------------------------- override files
OFFICIAL_2027 = """\
    # invented arrangement, for the test only
    year: 2027
    status: official
    source: "测试用安排 (not the real notice)"
    holidays:
      - name: 元旦（测试）
        days: [2026-12-31, 2027-01-01, 2027-01-02, 2027-01-03]
      - name: 春节（测试）
        days: [2027-02-05, 2027-02-06, 2027-02-07, 2027-02-08, 2027-02-09, 2027-02-10, 2027-02-11]
    workdays: [2027-01-30, 2027-02-20]
"""


def test_an_official_override_covers_the_year_and_names_its_holidays(holidays_dir: Path):
    write(holidays_dir, 2027, OFFICIAL_2027)
    assert coverage(date(2026, 11, 26), 12) == (True, [], "2026-11-26 至 2027-11-26 均有官方节假日安排")
    assert long_holidays(date(2026, 12, 1), date(2027, 2, 28)) == [
        Holiday("元旦（测试）", date(2026, 12, 31), date(2027, 1, 3), 4),   # reaches into December
        Holiday("春节（测试）", date(2027, 2, 5), date(2027, 2, 11), 7),
    ]
    assert not is_workday(date(2026, 12, 31)) and is_workday(date(2027, 1, 30))   # a Saturday worked
    assert workdays_before(next_long_holiday(date(2027, 1, 10)).first_day, 2) == date(2027, 2, 3)
    assert first_workday_of_month(2027, 2) == date(2027, 2, 1)


def test_an_override_for_a_covered_year_takes_precedence(holidays_dir: Path):
    write(holidays_dir, 2026, """\
        year: 2026
        status: official
        source: "测试用更正"
        holidays:
          - name: 院庆（测试）
            days: [2026-03-09]
        workdays: [2026-03-07]
    """)
    assert not is_workday(date(2026, 3, 9)) and is_workday(date(2026, 3, 7))
    # The file replaces the package for the whole year: unlisted days follow the weekday rule.
    assert is_workday(date(2026, 2, 16))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("year: 2027\nstatus: draft\nsource: x\n", "'status' must be 'official' or 'template'"),
        ("year: 2026\nstatus: official\nsource: x\n", "field 'year' is 2026"),
        ("year: 2027\nstatus: official\n", "needs 'source'"),
        ("year: 2027\nstatus: official\nsource: x\nworkdays: [2027-02-03]\n", "is a weekday"),
        ("year: 2027\nstatus: official\nsource: x\nholidays:\n  - name: 春节\n    days: [2027-02-30]\n", "not a date"),
        ("year: 2027\nstatus: official\nsource: x\nsource: y\n", "duplicate key `source`"),
        ("year: 2027\nstatus: official\nsource: x\nholiday: []\n", "holiday: Extra inputs are not permitted"),
    ],
)
def test_a_bad_override_file_is_refused_naming_file_and_field(holidays_dir: Path, body: str, message: str):
    (holidays_dir / "2027.yaml").write_text(body, encoding="utf-8")
    with pytest.raises(HolidayFileError, match="2027.yaml") as err:
        is_workday(date(2026, 6, 1))
    assert message in str(err.value)
