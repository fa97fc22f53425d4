"""Models loaded with dropout off, as every trained and frozen model of a run must be.

The policy's old and reference log-probs come from eval-mode passes while its updates run
in train mode; with dropout on (GPT-2, OPT and some Phi configs ship 0.1) the ratio would
start away from 1 and DPO's margin away from 0 at step 0. TRL disables dropout in RL for
the same reason. Probabilities are zeroed in the config before the model is built (some
attention code copies them at construction) and in every `nn.Dropout` after.
"""

from __future__ import annotations

import torch

DROPOUT_KEYS = ("dropout", "pdrop")


def without_dropout(config):
    """`config` (and its sub-configs) with every dropout probability set to 0."""
    from transformers import PretrainedConfig

    for key, value in list(vars(config).items()):
        if isinstance(value, PretrainedConfig):
            without_dropout(value)
        elif isinstance(value, float) and any(k in key for k in DROPOUT_KEYS):
            setattr(config, key, 0.0)
    return config


def disable_dropout(model: torch.nn.Module) -> torch.nn.Module:
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        for name in ("attention_dropout", "dropout"):  # probabilities some attention modules copied
            if isinstance(getattr(module, name, None), float):
                setattr(module, name, 0.0)
    return model


def load_without_dropout(auto_class, path: str, **kwargs) -> torch.nn.Module:
    """`auto_class.from_pretrained(path, **kwargs)` with dropout off (`config=` may be given)."""
    from transformers import AutoConfig

    config = without_dropout(kwargs.pop("config", None) or AutoConfig.from_pretrained(path))
    return disable_dropout(auto_class.from_pretrained(path, config=config, **kwargs))
