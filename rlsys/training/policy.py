"""The policy's passes on one learner rank: per-token log-probs of completions (old policy,
reference) and the mini-batch updates with the policy loss passed in.

Items are anything with `prompt_ids`, `completion_ids` and `temperature` for scoring
(samples or training items); updates need `TrainItem`s carrying old (and reference) log-probs
and advantages, as the algorithm made them.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import torch

from rlsys.algorithms.losses import PolicyLossOutput, lm_loss, mix_lm_loss
from rlsys.models.logprobs import PackedBatch, completion_logprobs, pack_sequences
from rlsys.algorithms.padding import pad_rows
from rlsys.training.engine import TrainingEngine, micro_batches
from rlsys.types import TrainItem

PolicyLoss = Callable[..., PolicyLossOutput]


def pack(items: list, idx: list[int], pad_id: int) -> PackedBatch:
    return pack_sequences([items[i].prompt_ids for i in idx], [items[i].completion_ids for i in idx], pad_id)


def temperatures(items: list, idx: list[int]) -> torch.Tensor:
    return torch.tensor([items[i].temperature for i in idx], dtype=torch.float32)


def sequence_lengths(items: list) -> list[int]:
    return [len(it.prompt_ids) + len(it.completion_ids) for it in items]


@torch.no_grad()
def score_logprobs(model: torch.nn.Module, items: list, micro_batch_size: int, chunk_tokens: int, pad_id: int,
                   autocast) -> list[list[float]]:
    """Per-token log-probs of each item's completion at its sampling temperature."""
    was_training = model.training
    model.eval()
    out: list[list[float]] = [[] for _ in items]
    try:
        for idx in micro_batches(list(range(len(items))), sequence_lengths(items), micro_batch_size):
            with autocast():
                lp = completion_logprobs(model, pack(items, idx, pad_id), chunk_tokens,
                                         temperature=temperatures(items, idx))
            for row, i in enumerate(idx):
                out[i] = lp.logprobs[row, : len(items[i].completion_ids)].float().cpu().tolist()
    finally:
        model.train(was_training)
    return out


def advantages_of(items: list[TrainItem], idx: list[int], width: int) -> torch.Tensor:
    """[B, 1] sequence advantages, or [B, width] when any item has per-token ones."""
    if all(items[i].token_advantages is None for i in idx):
        return torch.tensor([[items[i].advantage] for i in idx])
    rows = [items[i].token_advantages if items[i].token_advantages is not None
            else [items[i].advantage] * len(items[i].completion_ids) for i in idx]
    return pad_rows(rows, width)


class PolicyStep:
    """Mini-batch updates of the policy: `epochs` passes over the batch in shuffled
    mini-batches of `learner.mini_batch_size` sequences (over all ranks), each an optimiser
    step of the loss `loss_fn(logp, old_logp, advantages, mask, ref_logp, **loss_kwargs,
    total_tokens=, total_sequences=, max_tokens=)`, plus `lpt_coef` x L_PT when a text stream is given."""

    def __init__(self, engine: TrainingEngine, loss_fn: PolicyLoss, loss_kwargs: dict, pad_id: int, rank: int,
                 seed: int, max_new_tokens: int | None, lm_stream=None, lpt=None) -> None:
        self.engine, self.loss_fn, self.loss_kwargs = engine, loss_fn, loss_kwargs
        self.pad_id, self.rank, self.seed, self.max_new_tokens = pad_id, rank, seed, max_new_tokens
        self.lm_stream, self.lpt = lm_stream, lpt
        self.steps = 0

    def state_dict(self) -> dict:
        """What a resumed rank needs to shuffle and read L_PT text as this one would have."""
        return {"steps": self.steps, "lm_position": self.lm_stream.position if self.lm_stream else 0}

    def load_state_dict(self, state: dict) -> None:
        self.steps = state["steps"]
        if self.lm_stream is not None:
            self.lm_stream.position = state["lm_position"]

    def train(self, items: list[TrainItem]) -> dict[str, float]:
        cfg, eng = self.engine.cfg, self.engine
        rng = random.Random(self.seed * 1000003 + self.steps)
        weighted: dict[str, float] = {}  # token-weighted sums
        sums: dict[str, list[float]] = {}
        tokens = 0.0
        coef = self.lpt.coef if self.lpt is not None else 0.0
        # The shares below are already of the global loss; `undo` cancels DeepSpeed's averaging.
        for micros, total_tokens, total_seqs, undo in eng.mini_batches(items, sequence_lengths(items), rng,
                                                                         cfg.epochs, f"learner rank {self.rank}"):
            mini_loss = 0.0
            for idx in micros:
                out, lp, lm = self._micro_loss(items, idx, total_tokens, total_seqs)
                eng.backward_and_step(mix_lm_loss(out.loss * undo, lm, coef))
                mini_loss += float(out.loss.detach())
                if lm is not None:
                    sums.setdefault("lpt_loss", []).append(float(lm.detach()))
                n = float(out.n_tokens)
                tokens += n
                mask = lp.mask.float()
                for key, value in (("clip_fraction", out.clip_fraction), ("kl", out.kl), ("ratio", out.ratio_mean),
                                   ("approx_kl", out.approx_kl),
                                   ("entropy", (lp.entropy * mask).sum() / mask.sum().clamp(min=1))):
                    weighted[key] = weighted.get(key, 0.0) + float(value) * n
            sums.setdefault("policy_loss", []).append(mini_loss)
            if (grad_norm := eng.grad_norm()) is not None:
                sums.setdefault("grad_norm", []).append(grad_norm)
            self.steps += 1
        stats = {f"train/{k}": sum(v) / len(v) for k, v in sums.items()}
        stats.update({f"train/{k}": v / max(tokens, 1.0) for k, v in weighted.items()})
        stats.update({"train/tokens": tokens, "train/lr": eng.lr(), "train/optimizer_steps": float(self.steps)})
        return stats

    def _micro_loss(self, items: list[TrainItem], idx: list[int], total_tokens: float, total_seqs: float):
        eng = self.engine
        batch = pack(items, idx, self.pad_id)
        width = int(batch.completion_lens.max())
        old_lp = pad_rows([items[i].old_logprobs for i in idx], width).to(eng.device)
        has_ref = items[idx[0]].ref_logprobs is not None
        ref_lp = pad_rows([items[i].ref_logprobs for i in idx], width).to(eng.device) if has_ref else None
        adv = advantages_of(items, idx, width).to(eng.device)
        with eng.autocast():
            lp = completion_logprobs(eng.module, batch, eng.cfg.logprob_chunk_tokens, with_entropy=True,
                                     temperature=temperatures(items, idx))
            lm = self._lm_loss() if self.lm_stream is not None else None
        out = self.loss_fn(lp.logprobs, old_lp, adv, lp.mask, ref_lp, **self.loss_kwargs, total_tokens=total_tokens,
                           total_sequences=total_seqs, max_tokens=self.max_new_tokens)
        return out, lp, lm

    def _lm_loss(self) -> torch.Tensor:
        """L_PT on the next blocks of this rank's text stream."""
        blocks = self.lm_stream.take(self.lpt.sequences_per_micro_batch)
        batch = pack_sequences([b[:1] for b in blocks], [b[1:] for b in blocks], self.pad_id)
        lp = completion_logprobs(self.engine.module, batch, self.engine.cfg.logprob_chunk_tokens)
        return lm_loss(lp.logprobs, lp.mask)


def logprob_mismatch(items: list, learner: list[list[float]]) -> dict[str, float]:
    """Mean and max |log p_vLLM - log p_learner| per token over items that carry vLLM's
    log-probs: how far the sampler's distribution is from the one the learner trains."""
    diffs = [(torch.tensor(it.sampling_logprobs) - torch.tensor(lp)).abs() for it, lp in zip(items, learner)
             if it.sampling_logprobs is not None and len(it.sampling_logprobs) == len(lp) and lp]
    if not diffs:
        return {}
    flat = torch.cat(diffs)
    return {"train/logprob_mismatch": float(flat.mean()), "train/logprob_mismatch_max": float(flat.max()),
            "train/mismatch_tokens": float(flat.numel())}
