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
from rlsys.algorithms.padding import pad_rows
from rlsys.algorithms.tis import OldPolicy, tis_weights
from rlsys.models.flops import ModelShape, pass_work, training_flops
from rlsys.models.logprobs import PackedBatch, TokenLogprobs, completion_logprobs, pack_sequences
from rlsys.models.lora import is_lora
from rlsys.models.sampling_filter import SamplingFilter
from rlsys.models.shared_prefix import pack_shared, shared_prefix_logprobs, supports_shared_prefix
from rlsys.training.engine import TrainingEngine, micro_batches
from rlsys.records import TrainItem

PolicyLoss = Callable[..., PolicyLossOutput]


def pack(items: list, idx: list[int], pad_id: int) -> PackedBatch:
    return pack_sequences([items[i].prompt_ids for i in idx], [items[i].completion_ids for i in idx], pad_id)


def prompt_grouped_micro_batches(indices: list[int], items: list, size: int) -> list[list[int]]:
    """Chunks of `size`, the completions of one prompt next to each other (so a micro-batch
    holds whole groups and computes their prompt once), short prompts and completions first."""
    first_seen: dict[tuple, int] = {}
    for i in indices:
        first_seen.setdefault(tuple(items[i].prompt_ids), len(first_seen))
    ordered = sorted(indices, key=lambda i: (len(items[i].prompt_ids), first_seen[tuple(items[i].prompt_ids)],
                                             len(items[i].completion_ids)))
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]


def forward_logprobs(model: torch.nn.Module, items: list, idx: list[int], pad_id: int, chunk_tokens: int,
                     shared: bool, with_entropy: bool = False, keep: SamplingFilter | None = None) -> TokenLogprobs:
    """Log-probs of the completions of `items[idx]` at their sampling temperatures (through
    the engines' top-k / top-p filter `keep`); with `shared`, each distinct prompt is run once
    (rlsys.models.shared_prefix)."""
    temps = temperatures(items, idx)
    if shared:
        batch = pack_shared([items[i].prompt_ids for i in idx], [items[i].completion_ids for i in idx], pad_id)
        return shared_prefix_logprobs(model, batch, chunk_tokens, with_entropy, temps, keep)
    return completion_logprobs(model, pack(items, idx, pad_id), chunk_tokens, with_entropy, temps, keep)


def temperatures(items: list, idx: list[int]) -> torch.Tensor:
    return torch.tensor([items[i].temperature for i in idx], dtype=torch.float32)


def sequence_lengths(items: list) -> list[int]:
    return [len(it.prompt_ids) + len(it.completion_ids) for it in items]


@torch.no_grad()
def score_logprobs(model: torch.nn.Module, items: list, micro_batch_size: int, chunk_tokens: int, pad_id: int,
                   autocast, shared: bool = False, keep: SamplingFilter | None = None) -> list[list[float]]:
    """Per-token log-probs of each item's completion at its sampling temperature."""
    was_training = model.training
    model.eval()
    out: list[list[float]] = [[] for _ in items]
    indices = list(range(len(items)))
    split = (prompt_grouped_micro_batches(indices, items, micro_batch_size) if shared
             else micro_batches(indices, sequence_lengths(items), micro_batch_size))
    try:
        for idx in split:
            with autocast():
                lp = forward_logprobs(model, items, idx, pad_id, chunk_tokens, shared, keep=keep)
            for row, i in enumerate(idx):
                out[i] = lp.logprobs[row, : len(items[i].completion_ids)].float().cpu().tolist()
    finally:
        model.train(was_training)
    return out


def loss_mask(items: list, idx: list[int], completion_mask: torch.Tensor) -> torch.Tensor:
    """[B, Tc] bool: the completion ids the loss applies to (`TrainItem.loss_mask` where an
    item has one: a multi-turn trajectory's own ids; every completion id otherwise)."""
    if all(getattr(items[i], "loss_mask", None) is None for i in idx):
        return completion_mask
    rows = [items[i].loss_mask if items[i].loss_mask is not None else [1] * len(items[i].completion_ids) for i in idx]
    return completion_mask & pad_rows(rows, completion_mask.shape[1], torch.bool).to(completion_mask.device)


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
                 seed: int, max_new_tokens: int | None, lm_stream=None, lpt=None,
                 old: OldPolicy = OldPolicy(), keep: SamplingFilter | None = None) -> None:
        self.engine, self.loss_fn, self.loss_kwargs = engine, loss_fn, loss_kwargs
        self.pad_id, self.rank, self.seed, self.max_new_tokens = pad_id, rank, seed, max_new_tokens
        self.lm_stream, self.lpt, self.old, self.keep = lm_stream, lpt, old, keep
        self.shared = engine.cfg.shared_prefix and supports_shared_prefix(engine.module)
        self.shape = ModelShape.of(engine.module)
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
        mismatch: dict[str, float] = {}
        tokens, work = 0.0, [0, 0, 0]  # useful work of the pass: tokens run, scored, attention pairs
        coef = self.lpt.coef if self.lpt is not None else 0.0
        split = (lambda mini: prompt_grouped_micro_batches(mini, items, cfg.micro_batch_size)) if self.shared else None
        # The shares below are already of the global loss; `undo` cancels DeepSpeed's averaging.
        for m, (micros, total_tokens, total_seqs, undo) in enumerate(eng.mini_batches(
                items, sequence_lengths(items), rng, cfg.epochs, f"learner rank {self.rank}", split=split,
                tokens_of=lambda item: item.loss_tokens(),
                group_of=(lambda item: tuple(item.prompt_ids)) if self.shared else None)):
            mini_loss = 0.0
            for idx in micros:
                out, lp, mask, lm, tis = self._micro_loss(items, idx, total_tokens, total_seqs)
                eng.backward_and_step(mix_lm_loss(out.loss * undo, lm, coef))
                if m == 0:  # before any update: the learner's policy against the sampler's
                    add_mismatch(mismatch, items, idx, lp.logprobs, mask)
                done = pass_work([items[i].prompt_ids for i in idx], [items[i].completion_ids for i in idx], self.shared)
                work = [a + b for a, b in zip(work, done)]
                mini_loss += float(out.loss.detach())
                if lm is not None:
                    sums.setdefault("lpt_loss", []).append(float(lm.detach()))
                n = float(out.n_tokens)
                tokens += n
                mask = mask.float()
                pairs = [("clip_fraction", out.clip_fraction), ("kl", out.kl), ("ratio", out.ratio_mean),
                         ("approx_kl", out.approx_kl), ("entropy", (lp.entropy * mask).sum() / mask.sum().clamp(min=1))]
                if tis is not None:
                    pairs += [("tis_weight", tis.mean_weight), ("tis_clip_fraction", tis.clip_fraction)]
                for key, value in pairs:
                    weighted[key] = weighted.get(key, 0.0) + float(value) * n
            sums.setdefault("policy_loss", []).append(mini_loss)
            if (grad_norm := eng.grad_norm()) is not None:
                sums.setdefault("grad_norm", []).append(grad_norm)
            self.steps += 1
        stats = {f"train/{k}": sum(v) / len(v) for k, v in sums.items()}
        stats.update({f"train/{k}": v / max(tokens, 1.0) for k, v in weighted.items()})
        stats.update({"train/tokens": tokens, "train/lr": eng.lr(), "train/optimizer_steps": float(self.steps),
                      "train/flops": training_flops(self.shape, *work, frozen_weights=is_lora(eng.module))})
        stats.update(mismatch_stats(mismatch))
        return stats

    def _micro_loss(self, items: list[TrainItem], idx: list[int], total_tokens: float, total_seqs: float):
        eng = self.engine
        with eng.autocast():
            lp = forward_logprobs(eng.module, items, idx, self.pad_id, eng.cfg.logprob_chunk_tokens, self.shared,
                                  with_entropy=True, keep=self.keep)
            lm = self._lm_loss() if self.lm_stream is not None else None
        width = lp.mask.shape[1]
        mask = loss_mask(items, idx, lp.mask)
        sampling = None
        if all(items[i].sampling_logprobs is not None for i in idx):
            sampling = pad_rows([items[i].sampling_logprobs for i in idx], width).to(eng.device)
        if self.old.source == "current":  # one step per batch: the old policy is these very weights
            old_lp = lp.logprobs.detach()
        elif self.old.source == "sampler":
            old_lp = sampling
        else:
            old_lp = pad_rows([items[i].old_logprobs for i in idx], width).to(eng.device)
        has_ref = items[idx[0]].ref_logprobs is not None
        ref_lp = pad_rows([items[i].ref_logprobs for i in idx], width).to(eng.device) if has_ref else None
        adv = advantages_of(items, idx, width).to(eng.device)
        tis = None
        if self.old.tis_cap is not None and sampling is not None:
            tis = tis_weights(old_lp, sampling, mask, self.old.tis_cap)
        out = self.loss_fn(lp.logprobs, old_lp, adv, mask, ref_lp, **self.loss_kwargs, total_tokens=total_tokens,
                           total_sequences=total_seqs, max_tokens=self.max_new_tokens,
                           is_weights=tis.weights if tis is not None else None)
        return out, lp, mask, lm, tis

    def _lm_loss(self) -> torch.Tensor:
        """L_PT on the next blocks of this rank's text stream."""
        blocks = self.lm_stream.take(self.lpt.sequences_per_micro_batch)
        batch = pack_sequences([b[:1] for b in blocks], [b[1:] for b in blocks], self.pad_id)
        lp = completion_logprobs(self.engine.module, batch, self.engine.cfg.logprob_chunk_tokens)
        return lm_loss(lp.logprobs, lp.mask)


def logprob_mismatch(items: list, learner: list[list[float]]) -> dict[str, float]:
    """Mean and max |log p_vLLM - log p_learner| per token, and the k3 estimate of
    KL(sampler || learner), over items that carry vLLM's log-probs: how far the sampler's
    distribution is from the one the learner trains."""
    sums: dict[str, float] = {}
    for it, lp in zip(items, learner):
        if it.sampling_logprobs is not None and len(it.sampling_logprobs) == len(lp) and lp:
            keep = torch.tensor(getattr(it, "loss_mask", None) or [1] * len(lp), dtype=torch.bool)
            if keep.any():
                _accumulate(sums, torch.tensor(lp, dtype=torch.float64)[keep],
                            torch.tensor(it.sampling_logprobs, dtype=torch.float64)[keep])
    return mismatch_stats(sums)


def add_mismatch(sums: dict[str, float], items: list, idx: list[int], logprobs: torch.Tensor,
                 mask: torch.Tensor) -> None:
    """Accumulate the mismatch of one micro-batch's (pre-update) training-pass log-probs, on
    the ids the loss applies to (a trajectory's environment ids were not sampled)."""
    for row, i in enumerate(idx):
        s = items[i].sampling_logprobs
        if s is not None and len(s) == len(items[i].completion_ids) and s:
            keep = mask[row, : len(s)].cpu()
            if keep.any():
                _accumulate(sums, logprobs[row, : len(s)].detach().double().cpu()[keep],
                            torch.tensor(s, dtype=torch.float64)[keep])


def _accumulate(sums: dict[str, float], learner: torch.Tensor, sampler: torch.Tensor) -> None:
    log_ratio = learner - sampler  # log pi_learner / pi_sampler, on tokens drawn from the sampler
    sums["abs"] = sums.get("abs", 0.0) + float(log_ratio.abs().sum())
    sums["max"] = max(sums.get("max", 0.0), float(log_ratio.abs().max()))
    sums["k3"] = sums.get("k3", 0.0) + float(((log_ratio.exp() - 1.0) - log_ratio).sum())
    sums["n"] = sums.get("n", 0.0) + log_ratio.numel()


def mismatch_stats(sums: dict[str, float]) -> dict[str, float]:
    if not sums.get("n"):
        return {}
    n = sums["n"]
    return {"train/logprob_mismatch": sums["abs"] / n, "train/logprob_mismatch_max": sums["max"],
            "train/mismatch_kl": sums["k3"] / n, "train/mismatch_tokens": n}
