"""Useful floating-point work of a training pass, to compare against the machine's matmul
peak (`rlsys bench`). A token that runs through the model costs 2 FLOPs per weight of
every linear layer forward and twice that backward; the output projection runs only where
a scored token is predicted; attention costs 4 FLOPs per (query, key) pair per attention
channel per layer (scores and weighted values). Padding and recomputation are not useful
work and are not counted."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ModelShape:
    linear_params: int  # weights of the linear layers inside the blocks
    head_params: int  # the output projection (vocabulary x hidden)
    layers: int
    attention_width: int  # heads x head dimension of the queries

    @staticmethod
    def of(model: torch.nn.Module) -> "ModelShape":
        head = model.get_output_embeddings()
        linear = sum(m.weight.numel() for m in model.modules()
                     if isinstance(m, torch.nn.Linear) and m is not head)
        cfg = model.config
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        return ModelShape(linear, head.weight.numel(), cfg.num_hidden_layers, cfg.num_attention_heads * head_dim)


def forward_flops(shape: ModelShape, tokens: float, scored: float, attention_pairs: float) -> float:
    """One forward pass over `tokens` positions, `scored` of them projected to the vocabulary,
    with `attention_pairs` (query, key) pairs summed over the positions."""
    return (2.0 * shape.linear_params * tokens + 2.0 * shape.head_params * scored
            + 4.0 * shape.attention_width * shape.layers * attention_pairs)


def training_flops(shape: ModelShape, tokens: float, scored: float, attention_pairs: float,
                   frozen_weights: bool = False) -> float:
    """Forward and backward: the backward costs twice the forward. With `frozen_weights` (LoRA,
    whose adapters' gradients are a rounding error) the weights' matmuls need only their input
    gradients, once the forward; attention, which has no weights, still costs twice."""
    forward = forward_flops(shape, tokens, scored, attention_pairs)
    if not frozen_weights:
        return 3.0 * forward
    return 2.0 * forward + 4.0 * shape.attention_width * shape.layers * attention_pairs


def causal_pairs(prefix: int, length: int) -> int:
    """(query, key) pairs of `length` causal positions after `prefix` cached ones."""
    return length * prefix + length * (length + 1) // 2


def pass_work(prompts: list[list[int]], completions: list[list[int]], shared: bool) -> tuple[int, int, int]:
    """(tokens run through the model, scored tokens, attention pairs) of one micro-batch; with
    `shared`, each distinct prompt runs once and its completions attend to its cache."""
    scored = sum(len(c) for c in completions)
    if not shared:
        lengths = [len(p) + len(c) for p, c in zip(prompts, completions)]
        return sum(lengths), scored, sum(causal_pairs(0, n) for n in lengths)
    distinct = {tuple(p) for p in prompts}
    tokens = sum(len(p) for p in distinct) + scored
    pairs = sum(causal_pairs(0, len(p)) for p in distinct)
    pairs += sum(causal_pairs(len(p), len(c)) for p, c in zip(prompts, completions))
    return tokens, scored, pairs
