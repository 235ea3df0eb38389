"""Secrets by reference (`{env: NAME}` or `{prefect_secret: NAME}`): QH 9.1.1 forbids passwords in
files, so a literal password is refused, not just discouraged."""
from __future__ import annotations

import os
import re
from typing import Annotated, Any, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


class EnvSecret(BaseModel):
    model_config = ConfigDict(extra="forbid")
    env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")

    def describe(self) -> str:
        return f"env:{self.env}"


class PrefectSecret(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prefect_secret: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")

    def describe(self) -> str:
        return f"prefect_secret:{self.prefect_secret}"


def _refuse_literal(value: Any) -> Any:
    if isinstance(value, (str, int, float)):
        raise ValueError("a secret must be given by reference, not written in the file")
    return value


SecretRef = Annotated[Union[EnvSecret, PrefectSecret], BeforeValidator(_refuse_literal)]


class SecretMissing(RuntimeError):
    pass


def resolve_secret(ref: EnvSecret | PrefectSecret) -> str:
    """The secret's value, read at the moment it is needed and never stored or logged."""
    if isinstance(ref, EnvSecret):
        value = os.environ.get(ref.env)
        if value is None:
            raise SecretMissing(f"environment variable {ref.env} is not set (hint: export it, or use a Prefect Secret block)")
        return value
    from prefect.blocks.system import Secret  # imported late: only sites that use blocks pay for it

    try:
        return Secret.load(ref.prefect_secret).get()
    except Exception as exc:  # noqa: BLE001 - re-raised with the block's name and a hint
        raise SecretMissing(
            f"Prefect Secret block {ref.prefect_secret!r} could not be loaded ({type(exc).__name__}); "
            f"hint: prefect block create secret, or check PREFECT_API_URL"
        ) from exc


def refuse_password_in_dsn(dsn: str) -> str:
    """A DSN field's validator: a password written into the connection string is refused."""
    if re.search(r"password\s*=|://[^/@\s]+:[^/@\s]+@", dsn, re.I):
        raise ValueError("the DSN carries a password; give it in `password` by reference")
    return dsn
