"""The torch dtype of a config dtype name (the config resolves `auto`: rlsys.config.dtypes)."""

from __future__ import annotations


def torch_dtype(name: str):
    """The torch dtype of a config dtype name (`bfloat16`, `float32`, `float16`)."""
    import torch

    dtypes = {"bfloat16": torch.bfloat16, "float32": torch.float32, "float16": torch.float16}
    if name not in dtypes:
        raise ValueError(f"unknown dtype {name!r}; use one of {', '.join(dtypes)} (or auto in the config)")
    return dtypes[name]
