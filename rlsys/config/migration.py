"""Configs written for older rlsys versions, read as today's schema with a note saying what
to write instead."""

from __future__ import annotations

import sys
from typing import Any


def migrate_grpo_section(raw: Any) -> Any:
    """Configs written before `algorithm:` had a top-level `grpo:` section: it becomes
    `algorithm: {type: grpo, ...}`. An `algorithm:` without `type` is GRPO."""
    if not isinstance(raw, dict):
        return raw
    algorithm = raw.get("algorithm")
    if isinstance(algorithm, dict) and "type" not in algorithm:
        raw = {**raw, "algorithm": {"type": "grpo", **algorithm}}
    if "grpo" not in raw:
        return raw
    if "algorithm" in raw:
        raise ValueError("both `grpo:` and `algorithm:` are set: move the keys of `grpo:` under "
                         "`algorithm:` (with `type: grpo`) and delete `grpo:`")
    old = raw["grpo"] or {}
    if not isinstance(old, dict):
        raise ValueError("`grpo:` must be a mapping; write `algorithm: {type: grpo, ...}` instead")
    print("rlsys: note: the `grpo:` section is now `algorithm: {type: grpo, ...}` (and `grpo.x=...` "
          "overrides `algorithm.x=...`); this config was read as such", file=sys.stderr)
    return {**{k: v for k, v in raw.items() if k != "grpo"}, "algorithm": {"type": "grpo", **old}}
