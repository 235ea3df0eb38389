"""The base of every site-file model: a key the model does not know is an error (a typo such as
`treshold:` must not be silently ignored), reported with its file and field by config/problems.py."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
