"""Ragged per-token lists as right-padded tensors."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def pad_rows(rows: Sequence, width: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """[len(rows), width] of `dtype`, each row's values first and zeros after."""
    out = torch.zeros(len(rows), width, dtype=dtype)
    for i, r in enumerate(rows):
        values = torch.as_tensor(r, dtype=dtype)
        out[i, : values.numel()] = values
    return out
