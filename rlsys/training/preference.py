"""The preference (DPO) passes on one learner rank: summed log-probs of the chosen and
rejected answers of each pair, in one forward over both, and the optimiser steps of the
preference loss passed in by name.

Every pass returns per-pair values (loss, rewards, log-probs); the loop turns the pairs of
every rank into the metrics with `pair_metrics`, so nothing here averages across ranks.
"""

from __future__ import annotations

import random
from contextlib import AbstractContextManager

import torch

from rlsys.algorithms.dpo import preference_loss
from rlsys.models.logprobs import completion_logprobs, pack_sequences
from rlsys.training.engine import TrainingEngine, micro_batches
from rlsys.records import PairItem

PAIR_FIELDS = ("loss", "chosen_reward", "rejected_reward", "chosen_logp", "rejected_logp")


def pair_lengths(items: list[PairItem]) -> list[int]:
    return [len(p.prompt_ids) + max(len(p.chosen_ids), len(p.rejected_ids)) for p in items]


def pair_logprobs(model: torch.nn.Module, items: list[PairItem], idx: list[int], pad_id: int, chunk_tokens: int
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Summed log-probs of the chosen and of the rejected answers [B] and their lengths [B]:
    one forward over the 2B sequences (chosen rows first)."""
    prompts = [items[i].prompt_ids for i in idx] * 2
    answers = [items[i].chosen_ids for i in idx] + [items[i].rejected_ids for i in idx]
    lp = completion_logprobs(model, pack_sequences(prompts, answers, pad_id), chunk_tokens)
    sums = (lp.logprobs * lp.mask).sum(-1)
    lengths = lp.mask.sum(-1).to(sums.dtype)
    b = len(idx)
    return sums[:b], sums[b:], lengths[:b], lengths[b:]


class PreferenceStep:
    """Optimiser steps of `loss` ('sigmoid', 'ipo', 'hinge') on pairs that carry their
    reference log-probs; the mean over the global mini-batch is each step's loss."""

    def __init__(self, engine: TrainingEngine, loss: str, beta: float, label_smoothing: float, pad_id: int,
                 rank: int, seed: int, nll_coef: float = 0.0) -> None:
        self.engine, self.loss, self.beta, self.label_smoothing = engine, loss, beta, label_smoothing
        self.nll_coef = nll_coef
        self.pad_id, self.rank, self.seed = pad_id, rank, seed
        self.steps = 0

    def state_dict(self) -> dict:
        return {"steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        self.steps = state["steps"]

    def _outputs(self, items: list[PairItem], idx: list[int], model: torch.nn.Module):
        pc, pr, nc, nr = pair_logprobs(model, items, idx, self.pad_id, self.engine.cfg.logprob_chunk_tokens)
        device = pc.device
        rc = torch.tensor([items[i].ref_chosen for i in idx], dtype=pc.dtype, device=device)
        rr = torch.tensor([items[i].ref_rejected for i in idx], dtype=pc.dtype, device=device)
        out = preference_loss(pc, pr, rc, rr, nc, nr, self.loss, self.beta, self.label_smoothing, self.nll_coef)
        return out, pc.detach(), pr.detach()

    @staticmethod
    def _rows(out, pc, pr) -> list[list[float]]:
        cols = [out.losses.detach(), out.chosen_rewards, out.rejected_rewards, pc, pr]
        return torch.stack([c.float().cpu() for c in cols], dim=1).tolist()

    def train(self, items: list[PairItem]) -> dict:
        """One pass of optimiser steps over this rank's pairs; per-pair rows and step stats."""
        eng = self.engine
        missing = [i for i, p in enumerate(items) if p.ref_chosen is None or p.ref_rejected is None]
        if missing:
            raise ValueError(f"learner rank {self.rank}: {len(missing)} pair(s) came without reference log-probs")
        rng = random.Random(self.seed * 1000003 + self.steps)
        rows: list[list[float]] = []
        grad_norms = []
        for micros, _, total_pairs, undo in eng.mini_batches(items, pair_lengths(items), rng, 1,
                                                             f"learner rank {self.rank}", tokens_of=lambda p: 1):
            for idx in micros:
                with eng.autocast():
                    out, pc, pr = self._outputs(items, idx, eng.module)
                eng.backward_and_step(out.losses.sum() / total_pairs * undo)
                rows += self._rows(out, pc, pr)
            if (norm := eng.grad_norm()) is not None:
                grad_norms.append(norm)
            self.steps += 1
        return {"pairs": rows, "grad_norm": grad_norms, "lr": eng.lr(), "steps": self.steps}

    @torch.no_grad()
    def evaluate(self, items: list[PairItem]) -> list[list[float]]:
        """Per-pair rows of the current policy, without updates (eval mode)."""
        model = self.engine.module
        was_training = model.training
        model.eval()
        rows: list[list[float]] = []
        order = micro_batches(list(range(len(items))), pair_lengths(items), self.engine.cfg.micro_batch_size)
        try:
            by_index = {}
            for idx in order:
                with self.engine.autocast():
                    out, pc, pr = self._outputs(items, idx, model)
                by_index.update(zip(idx, self._rows(out, pc, pr)))
            rows = [by_index[i] for i in range(len(items))]
        finally:
            model.train(was_training)
        return rows

    @torch.no_grad()
    def reference(self, items: list[PairItem], reference: AbstractContextManager, model: torch.nn.Module
                  ) -> list[tuple[float, float]]:
        """(chosen, rejected) summed log-probs under the reference: `model` inside the
        `reference` context (the policy with its adapter off, or a frozen copy)."""
        was_training = model.training
        model.eval()
        out: dict[int, tuple[float, float]] = {}
        try:
            with reference:
                for idx in micro_batches(list(range(len(items))), pair_lengths(items), self.engine.cfg.micro_batch_size):
                    with self.engine.autocast():
                        pc, pr, _, _ = pair_logprobs(model, items, idx, self.pad_id, self.engine.cfg.logprob_chunk_tokens)
                    out.update({i: (float(c), float(r)) for i, c, r in zip(idx, pc.tolist(), pr.tolist())})
        finally:
            model.train(was_training)
        return [out[i] for i in range(len(items))]


def pair_metrics(rows: list[list[float]], prefix: str) -> dict[str, float]:
    """Means over pairs of every rank: loss, rewards, margin, accuracy (chosen reward above
    the rejected one), log-probs."""
    if not rows:
        return {}
    t = torch.tensor(rows, dtype=torch.float64)
    loss, rc, rr, lc, lr = (t[:, k] for k in range(len(PAIR_FIELDS)))
    return {f"{prefix}/loss": float(loss.mean()), f"{prefix}/rewards_chosen": float(rc.mean()),
            f"{prefix}/rewards_rejected": float(rr.mean()), f"{prefix}/margin": float((rc - rr).mean()),
            f"{prefix}/accuracy": float((rc > rr).double().mean()), f"{prefix}/logps_chosen": float(lc.mean()),
            f"{prefix}/logps_rejected": float(lr.mean()), f"{prefix}/pairs": float(len(rows))}
