"""LoRA through PEFT: wrapping a model, naming its adapter tensors as PEFT saves them (the
names vLLM's LoRA loader parses), the merged weights a plain engine takes instead, and the
engine-side rank limit."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import torch


class LoraSettings(Protocol):
    """What LoRA reads of `model.lora` (rlsys.config.LoraSettings)."""

    r: int
    alpha: float
    dropout: float
    target_modules: Sequence[str]

ADAPTER = "default"  # PEFT's adapter name; saved files drop it from tensor names
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def linear_leaf_names(model: torch.nn.Module) -> set[str]:
    return {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}


def apply_lora(model: torch.nn.Module, settings: LoraSettings, model_path: str):
    """`model` with LoRA adapters on `settings.target_modules` (B = 0, so it computes what
    the base does); only adapter parameters require gradients."""
    from peft import LoraConfig, get_peft_model

    available = linear_leaf_names(model)
    missing = [t for t in settings.target_modules if t not in available]
    if missing:
        raise ValueError(f"model.lora.target_modules: {missing} are not linear layers of {model_path}; "
                         f"its linear layers are {sorted(available)}")
    config = LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                        target_modules=list(settings.target_modules), bias="none", task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config)
    peft_model.peft_config[ADAPTER].base_model_name_or_path = model_path
    return peft_model


def is_lora(model: torch.nn.Module) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "disable_adapter")


def adapter_parameters(model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    """(saved name, parameter) of every adapter tensor: PEFT's name without the adapter's,
    e.g. base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight."""
    return [(name.replace(f".{ADAPTER}.", "."), p) for name, p in model.named_parameters() if "lora_" in name]


def merged_weights(model: torch.nn.Module) -> list[tuple[str, list[torch.nn.Parameter], Callable[[], torch.Tensor]]]:
    """Every weight of the adapted model as a plain engine names it (the base model's names),
    with the parameters it is computed from (to gather under ZeRO-3) and the function that
    computes it: W + (alpha/r) B A for an adapted layer's weight (PEFT's own delta), the
    weight itself otherwise."""
    from peft.tuners.lora import LoraLayer

    adapted = {name: m for name, m in model.named_modules() if isinstance(m, LoraLayer)}
    out = []
    for name, param in model.named_parameters():
        if "lora_" in name:
            continue
        plain = name.removeprefix("base_model.model.").replace(".base_layer.", ".")
        layer = adapted.get(name.removesuffix(".base_layer.weight")) if name.endswith(".base_layer.weight") else None
        if layer is None:
            out.append((plain, [param], param.detach))
        else:
            parts = [param, layer.lora_A[ADAPTER].weight, layer.lora_B[ADAPTER].weight]
            out.append((plain, parts, _merged(param, layer)))
    return out


def _merged(weight: torch.nn.Parameter, layer) -> Callable[[], torch.Tensor]:
    def compute() -> torch.Tensor:
        with torch.no_grad():
            return weight.detach() + layer.get_delta_weight(ADAPTER).to(weight.dtype)
    return compute


def adapter_config(model: torch.nn.Module) -> dict:
    """The adapter's PEFT config as plain JSON values (what adapter_config.json holds)."""
    raw = model.peft_config[ADAPTER].to_dict()
    return {k: (sorted(v) if isinstance(v, set) else v) for k, v in raw.items()}


def engine_max_rank(r: int) -> int:
    """The smallest rank limit vLLM accepts that fits an adapter of rank `r`."""
    for allowed in VLLM_LORA_RANKS:
        if allowed >= r:
            return allowed
    raise ValueError(f"model.lora.r={r} is above vLLM's largest LoRA rank {VLLM_LORA_RANKS[-1]}")
