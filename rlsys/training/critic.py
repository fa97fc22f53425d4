"""The critic's model and passes: a causal LM's decoder with a one-output head per token
(`AutoModelForTokenClassification` with one label, so it saves and loads as a HF folder),
its per-token values of completions, and mini-batch updates of the clipped value loss.

The value of completion token t is read at the position that predicts it (the state before
the token is generated), the same alignment as the policy's log-probs.
"""

from __future__ import annotations

import random

import torch

from rlsys.algorithms.value import clipped_value_loss
from rlsys.models.logprobs import PackedBatch
from rlsys.models.no_dropout import load_without_dropout
from rlsys.algorithms.padding import pad_rows
from rlsys.training.engine import TrainingEngine, micro_batches
from rlsys.training.policy import loss_mask, pack, sequence_lengths
from rlsys.records import TrainItem


def load_value_model(path: str) -> torch.nn.Module:
    """A value model from a causal LM (a new head, initialised to 0 so every value starts at
    0) or from a critic saved by a run (its head kept)."""
    from transformers import AutoConfig, AutoModelForTokenClassification

    config = AutoConfig.from_pretrained(path)
    saved_critic = any(a.endswith("ForTokenClassification") for a in (config.architectures or []))
    config.num_labels = 1
    config.classifier_dropout = 0.0  # HF's default 0.1 would make values noisy while training
    model = load_without_dropout(AutoModelForTokenClassification, path, config=config, dtype=torch.float32)
    head = value_head(model)
    if not saved_critic:
        with torch.no_grad():
            for p in head.parameters():
                p.zero_()
    return model


def value_head(model: torch.nn.Module) -> torch.nn.Module:
    for name in ("score", "classifier"):
        if isinstance(getattr(model, name, None), torch.nn.Module):
            return getattr(model, name)
    raise ValueError(f"{type(model).__name__} has no token-classification head (`score` or `classifier`)")


def token_values(model: torch.nn.Module, batch: PackedBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, Tc] values of the completion tokens (0 beyond each completion) and their mask."""
    device = next(model.parameters()).device
    out = model(input_ids=batch.input_ids.to(device), attention_mask=batch.attention_mask.to(device)).logits[..., 0]
    mask = batch.completion_mask.to(device)
    offsets = torch.arange(mask.shape[1], device=device)[None, :]
    # Position p + t - 1 is the state before completion token t; clamp keeps padding in range.
    pos = (batch.prompt_lens.to(device)[:, None] + offsets - 1).clamp(max=out.shape[1] - 1)
    values = out.gather(1, pos).float()
    return values * mask, mask


class ValueStep:
    """Per-token values, and `epochs` passes of mini-batch updates of the clipped value loss
    (token mean over each global mini-batch)."""

    def __init__(self, engine: TrainingEngine, pad_id: int, rank: int, seed: int, value_clip: float | None) -> None:
        self.engine, self.pad_id, self.rank, self.seed, self.value_clip = engine, pad_id, rank, seed, value_clip
        self.steps = 0

    def state_dict(self) -> dict:
        return {"steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        self.steps = state["steps"]

    @torch.no_grad()
    def values(self, items: list) -> list[list[float]]:
        model, eng = self.engine.module, self.engine
        model.eval()
        out: list[list[float]] = [[] for _ in items]
        try:
            for idx in micro_batches(list(range(len(items))), sequence_lengths(items), eng.cfg.micro_batch_size):
                with eng.autocast():
                    values, _ = token_values(model, pack(items, idx, self.pad_id))
                for row, i in enumerate(idx):
                    out[i] = values[row, : len(items[i].completion_ids)].float().cpu().tolist()
        finally:
            model.train()
        return out

    def train(self, items: list[TrainItem]) -> dict[str, float]:
        eng, cfg = self.engine, self.engine.cfg
        rng = random.Random(self.seed * 7919 + self.steps)
        losses, tokens, clipped = [], 0.0, 0.0
        for micros, total_tokens, _, undo in eng.mini_batches(items, sequence_lengths(items), rng, cfg.epochs,
                                                               f"critic rank {self.rank}",
                                                               tokens_of=lambda item: item.loss_tokens()):
            mini_loss = 0.0
            for idx in micros:
                batch = pack(items, idx, self.pad_id)
                width = int(batch.completion_lens.max())
                returns = pad_rows([items[i].returns for i in idx], width).to(eng.device)
                old = pad_rows([items[i].old_values for i in idx], width).to(eng.device)
                with eng.autocast():
                    values, mask = token_values(eng.module, batch)
                mask = loss_mask(items, idx, mask.bool())  # a trajectory's environment ids take no value step
                out = clipped_value_loss(values, old, returns, mask, self.value_clip, total_tokens=total_tokens)
                eng.backward_and_step(out.loss * undo)
                mini_loss += float(out.loss.detach())
                n = float(mask.sum())
                tokens += n
                clipped += float(out.clip_fraction) * n
            losses.append(mini_loss)
            self.steps += 1
        return {"critic/value_loss": sum(losses) / len(losses), "critic/value_clip_fraction": clipped / max(tokens, 1.0),
                "critic/tokens": tokens, "critic/lr": eng.lr(), "critic/optimizer_steps": float(self.steps)}
