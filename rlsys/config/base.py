"""The base of every config section: unknown keys are refused, so a misspelt key is an error."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

class Section(BaseModel):
    """Every config section rejects unknown keys (a misspelt key is an error)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
