"""config/holidays/<year>.yaml: a State Council notice as the calendar reads it, validated like
every other config file (pydantic, read by config.problems.read_yaml: UTF-8, duplicate keys,
impossible dates), with the file and the field in every error."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from config.problems import read_yaml


class HolidayFileError(ValueError):
    """A config/holidays/<year>.yaml file that cannot be used."""


@dataclass(frozen=True)
class Override:
    year: int
    status: str          # "official" | "template"
    source: str
    path: Path
    holidays: dict[date, str] = field(hash=False)
    workdays: frozenset[date] = frozenset()


class _HolidayEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    days: list[date] = Field(min_length=1)


class _HolidayFile(BaseModel):
    """config/holidays/<year>.yaml: a State Council notice as the calendar reads it."""
    model_config = ConfigDict(extra="forbid")
    year: int
    status: Literal["official", "template"]
    source: str = ""
    holidays: list[_HolidayEntry] = Field(default_factory=list)
    workdays: list[date] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> "_HolidayFile":
        if self.status == "official" and not self.source.strip():
            raise ValueError("an official file needs 'source' (hint: the notice's title and 国办发明电 number)")
        # A notice may reach into the previous December (e.g. the 2019 元旦 arrangement began 2018-12-30).
        allowed = (self.year - 1, self.year)
        off = set()
        for i, item in enumerate(self.holidays):
            for day in item.days:
                if day.year not in allowed:
                    raise ValueError(f"holidays[{i}].days: {day} lies outside {self.year - 1}-12/{self.year}")
                off.add(day)
        for day in self.workdays:
            if day.year not in allowed or day in off:
                raise ValueError(f"workdays: {day} is outside the year or also listed as a holiday")
            if day.weekday() < 5:
                raise ValueError(f"workdays: {day} is a weekday (hint: list only weekend days worked, 调休上班)")
        return self


def _problem_text(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "literal_error" and where == "status":
        message = f"field 'status' must be 'official' or 'template', not {first.get('input')!r}"
    elif first["type"].startswith("date"):
        message = f"{first.get('input')!r} is not a date (hint: write YYYY-MM-DD)"
    return f"{where}: {message}" if where else message


def parse(path: Path) -> Override:
    raw, problems = read_yaml(path)   # the site files' reader: UTF-8, duplicate keys, impossible dates
    if problems:
        raise HolidayFileError(f"{path}: {problems[0].field + ': ' if problems[0].field else ''}{problems[0].message}")
    if not isinstance(raw, dict):
        raise HolidayFileError(f"{path}: expected a mapping with year, status, source, holidays, workdays")
    try:
        f = _HolidayFile.model_validate(raw)
    except ValidationError as exc:
        raise HolidayFileError(f"{path}: {_problem_text(exc)}") from None
    if f.year != int(path.stem):
        raise HolidayFileError(f"{path}: field 'year' is {f.year!r} but the file name says {path.stem}")
    holidays = {day: item.name for item in f.holidays for day in item.days}
    return Override(f.year, f.status, f.source.strip(), path, holidays, frozenset(f.workdays))
