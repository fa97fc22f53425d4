"""The base of every config section: unknown keys are refused, so a misspelt key is an error."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

# Ray's placement-group strategies, for roles with several ranks.
PlacementStrategy = Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"]


class Section(BaseModel):
    """Every config section rejects unknown keys (a misspelt key is an error)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_attribute_docstrings=True)
