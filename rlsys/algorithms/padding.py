"""Ragged per-token lists as right-padded tensors."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def pad_rows(rows: Sequence, width: int) -> torch.Tensor:
    """[len(rows), width] float32, each row's values first and zeros after."""
    out = torch.zeros(len(rows), width, dtype=torch.float32)
    for i, r in enumerate(rows):
        values = torch.as_tensor(r, dtype=torch.float32)
        out[i, : values.numel()] = values
    return out
