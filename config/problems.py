"""Problems in site files, said the way an engineer can act on: file, field, what is wrong, a hint.

Pydantic's own messages name internal types ("EnvSecret", "union_tag_invalid"); the users of
`ebops config check` are maintenance engineers editing YAML, so every error is turned into the
field path as written in the file and a hint about what to write instead.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# variables_from may name an environment variable, with a default: ${env:NAME} or ${env:NAME:-default}
_ENV_RE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_SECRET_FIELDS = {"password", "access_key", "secret_key", "key", "key_passphrase", "url"}


@dataclass(frozen=True)
class ConfigProblem:
    file: str
    field: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        where = f"{self.file}: {self.field}" if self.field else self.file
        return f"{where}: {self.message}" + (f" (hint: {self.hint})" if self.hint else "")


class SiteConfigError(Exception):
    def __init__(self, problems: list[ConfigProblem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def _field_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("EnvSecret", "PrefectSecret", "function-before[_refuse_literal(), union[EnvSecret,PrefectSecret]]"):
            continue  # pydantic's union branch names mean nothing to the reader
        else:
            out += ("." if out else "") + str(part)
    return out


def _lookup(data: Any, loc: tuple) -> Any:
    cur = data
    for part in loc:
        try:
            cur = cur[part]
        except (KeyError, IndexError, TypeError):
            return None
    return cur


def _hint(field: str, err: dict, data: dict) -> tuple[str, str]:
    """(message, hint) for one pydantic error."""
    leaf = field.rsplit(".", 1)[-1].split("[")[0]
    etype, msg = err["type"], err["msg"]
    if "must be given by reference" in msg or (leaf in _SECRET_FIELDS and etype in ("model_type", "union_tag_invalid", "dict_type")):
        return ("a secret must not be written in the file",
                f"write `{leaf}: {{env: NAME}}` or `{leaf}: {{prefect_secret: block-name}}`")
    if etype == "missing":
        return ("required field is missing", f"add `{leaf}:` (see config/sites/example-oracle.yaml)")
    if etype == "extra_forbidden":
        return (f"unknown field `{leaf}`", "check the spelling; see config/sites/example-oracle.yaml for the fields")
    if etype == "literal_error":
        allowed = msg.split("Input should be ", 1)[-1]
        return (f"value {err.get('input')!r} is not allowed", f"use one of {allowed}")
    if etype.endswith("_parsing") or etype.endswith("_type"):
        return (f"wrong type: {msg.lower()}", f"got {err.get('input')!r}")
    if etype == "string_pattern_mismatch":
        pattern = (err.get("ctx") or {}).get("pattern", "")
        return (f"value {err.get('input')!r} has the wrong form", f"must match {pattern}")
    if etype in ("greater_than_equal", "less_than_equal"):
        return (msg, f"got {err.get('input')!r}")
    return (msg.removeprefix("Value error, "), "")


def problems_from_validation(exc: ValidationError, path: Path, data: dict) -> list[ConfigProblem]:
    seen: set[tuple[str, str]] = set()
    out: list[ConfigProblem] = []
    for err in exc.errors():
        field = _field_path(err["loc"])
        # Name hosts by their name rather than their index where we can.
        m = re.match(r"hosts\[(\d+)\]", field)
        if m:
            host = _lookup(data, ("hosts", int(m.group(1)), "name"))
            if host:
                field = field.replace(m.group(0), f"hosts[{m.group(1)}:{host}]", 1)
        message, hint = _hint(field, err, data)
        if (field, message) in seen:
            continue  # a union reports the same mistake once per branch
        seen.add((field, message))
        out.append(ConfigProblem(str(path), field, message, hint))
    return out


def substitute(data: dict, path: Path) -> tuple[dict, list[ConfigProblem]]:
    """Fill `${name}` placeholders from the file named by `variables_from`."""
    problems: list[ConfigProblem] = []
    variables: dict[str, Any] = {}
    ref = data.get("variables_from")
    if ref:
        ref, unset = _expand_env(str(ref))
        if unset:
            problems.append(ConfigProblem(str(path), "variables_from", f"environment variable {unset} is not set",
                                          f"set it, or write ${{env:{unset}:-default}}"))
            return data, problems
        vpath = (path.parent / ref).resolve()
        if not vpath.exists():
            sandbox_dir = os.environ.get("EBOPS_SANDBOX_DIR")
            problems.append(ConfigProblem(str(path), "variables_from", f"{vpath} does not exist",
                                          "for the demo site: run `ebops sandbox up` first" + (
                                              f" (with EBOPS_SANDBOX_DIR={sandbox_dir}, as now)" if sandbox_dir else "")))
            return data, problems
        variables = yaml.safe_load(vpath.read_text(encoding="utf-8")) or {}

    def fill(value: Any, where: str) -> Any:
        if isinstance(value, dict):
            return {k: fill(v, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if not isinstance(value, str) or "${" not in value:
            return value
        whole = _VAR_RE.fullmatch(value)
        if whole and whole.group(1) in variables:
            return variables[whole.group(1)]  # keeps ints as ints (ports)
        for name in _VAR_RE.findall(value):
            if name not in variables:
                problems.append(ConfigProblem(str(path), where, f"unknown variable ${{{name}}}",
                                              "define it in the file named by variables_from"))
        return _VAR_RE.sub(lambda m: str(variables.get(m.group(1), m.group(0))), value)

    return fill(data, ""), problems


def _expand_env(ref: str) -> tuple[str, str | None]:
    """`${env:NAME}` / `${env:NAME:-default}` in variables_from filled from the environment (the
    demo site follows EBOPS_SANDBOX_DIR so); returns (value, the first unset name without default)."""
    unset: list[str] = []

    def one(m: re.Match) -> str:
        value = os.environ.get(m.group(1)) or m.group(2)
        if value is None:
            unset.append(m.group(1))
            return m.group(0)
        return value

    out = _ENV_RE.sub(one, ref)
    return out, (unset[0] if unset else None)
