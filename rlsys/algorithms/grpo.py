"""GRPO as an algorithm object: a scored batch becomes training items with group-relative
advantages (plus MiniLLM's per-token term when the reward combiner asks for it); the
learner's loss is the PPO-clip surrogate with an optional KL to a reference."""

from __future__ import annotations

import torch

from rlsys.algorithms.advantages import grpo_advantages, informative_samples
from rlsys.algorithms.distill import minillm_token_advantages, truncated_token_rewards
from rlsys.algorithms.settings import GRPOSettings, RewardSettings
from rlsys.records import ScoredBatch, TrainItem


class GRPO:
    loss = "ppo_clip"

    def __init__(self, cfg: GRPOSettings, reward: RewardSettings, mini_batch_size: int = 1) -> None:
        if cfg.drop_uniform_groups and reward.combiner == "minillm":
            raise ValueError("algorithm.drop_uniform_groups cannot go with reward.combiner: minillm (its per-token "
                             "term gives every sample a gradient): set one of them off")
        self.cfg, self.reward, self.mini_batch_size = cfg, reward, mini_batch_size

    @property
    def needs_reference(self) -> bool:
        return self.cfg.kl_beta > 0

    needs_critic = False

    @property
    def needs_teacher_tokens(self) -> bool:
        """MiniLLM's per-token rewards compare teacher and student token by token."""
        return self.reward.combiner == "minillm"

    def train_items(self, batch: ScoredBatch) -> tuple[list[TrainItem], dict[str, float]]:
        rewards = torch.tensor(batch.rewards, dtype=torch.float64)
        advantages = grpo_advantages(rewards, batch.group_size, self.cfg.std_normalize).tolist()
        token_advantages: list[list[float] | None] = [None] * len(batch.samples)
        if self.needs_teacher_tokens:
            if batch.teacher_logprobs is None:
                raise ValueError("reward.combiner=minillm needs the teacher's per-token log-probs")
            token_rewards = [truncated_token_rewards(t, s.sampling_logprobs)
                             for t, s in zip(batch.teacher_logprobs, batch.samples)]
            m = self.reward.minillm
            token_advantages = minillm_token_advantages(advantages, token_rewards, m.coef, m.gamma, m.length_normalize)
        old = batch.old_logprobs or [None] * len(batch.samples)
        ref = batch.ref_logprobs or [None] * len(batch.samples)
        items = [TrainItem(s.prompt_ids, s.completion_ids, a, ta, s.temperature, s.sampling_logprobs, o, r,
                           loss_mask=s.loss_mask)
                 for s, a, ta, o, r in zip(batch.samples, advantages, token_advantages, old, ref)]
        kept = self.kept_samples(batch)
        if kept is None:
            return items, {}
        return [items[i] for i in kept], {"train/kept_fraction": len(kept) / len(items)}

    def kept_samples(self, batch: ScoredBatch) -> list[int] | None:
        """The indices of the samples that become training items, in order (None: all)."""
        if not self.cfg.drop_uniform_groups:
            return None
        return informative_samples(batch.rewards, batch.group_size, self.mini_batch_size)
