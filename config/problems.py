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

from config.approvals import REMOVED_APPROVAL_KEYS

# ${name} or ${name:-default}: a default serves values a variables file may lack (the demo's
# migration target exists only after `ebops sandbox up --with-target`)
_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
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
    if etype == "extra_forbidden" and leaf in REMOVED_APPROVAL_KEYS:
        return (f"`{REMOVED_APPROVAL_KEYS[leaf]}` is no longer read: a standing approval is a record in the "
                "evidence store now, made by a second person (QH 9.1.2)",
                "remove the key; run the duty in plan mode, then `ebops approve SITE PLAN_KEY --as NAME` "
                "(the approver must be listed under `approvers:`)")
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
    if etype in ("greater_than_equal", "less_than_equal", "greater_than", "less_than", "finite_number"):
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


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping names one key twice: YAML would silently keep the last value only."""

    def __init__(self, key: Any, first_line: int, node: yaml.Node):
        self.key, self.first_line = key, first_line
        super().__init__("while reading a mapping", None,
                         f"duplicate key `{key}` (first at line {first_line})", node.start_mark)


class UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that refuses a key given twice in one mapping (a pasted block overriding an
    earlier `thresholds:` without a word)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # `<<: *anchor` merges are allowed to be overridden
                key = self.construct_object(key_node, deep=deep)
                try:
                    seen = key in first
                except TypeError:
                    continue  # an unhashable key: the base class says what is wrong with it
                if seen:
                    raise DuplicateKeyError(key, first[key], key_node)
                first[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path) -> tuple[Any, list[ConfigProblem]]:
    """A YAML file's content, or the problems that stop it being read: unreadable, not UTF-8
    (with the byte's offset and line), not YAML, a duplicate key (with its line)."""
    where = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return None, [ConfigProblem(where, "", f"cannot read the file: {exc.strerror or exc}",
                                    "check that it exists and is readable by this user")]
    try:
        text = raw.decode("utf-8-sig")  # a BOM from a Windows editor is harmless
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        return None, [ConfigProblem(where, f"line {line}", f"not UTF-8: byte 0x{raw[exc.start]:02x} at offset "
                                    f"{exc.start}", "save the file as UTF-8 (an editor may have written GBK/GB18030)")]
    try:
        return yaml.load(text, Loader=UniqueKeyLoader), []
    except DuplicateKeyError as exc:
        line = exc.problem_mark.line + 1
        return None, [ConfigProblem(where, str(exc.key), f"duplicate key `{exc.key}` at line {line} (first at line "
                                    f"{exc.first_line})", "give each key once: YAML would silently keep only the last")]
    except ValueError as exc:  # YAML reads 2027-02-30 as a date and the calendar refuses it
        return None, [ConfigProblem(where, "", f"not a date: {exc}", "write an existing date as YYYY-MM-DD")]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        return None, [ConfigProblem(where, f"line {mark.line + 1}" if mark else "",
                                    f"not valid YAML: {getattr(exc, 'problem', None) or exc}",
                                    "check indentation and quoting")]


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
        variables, unreadable = read_yaml(vpath)
        if unreadable:
            return data, unreadable
        if not isinstance(variables, dict):
            variables = {}

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
        for name, default in _VAR_RE.findall(value):
            if name not in variables and not default:
                problems.append(ConfigProblem(str(path), where, f"unknown variable ${{{name}}}",
                                              "define it in the file named by variables_from"))
        return _VAR_RE.sub(lambda m: str(variables.get(m.group(1), m.group(2) if m.group(2) else m.group(0))), value)

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
