"""PPO as an algorithm object: per-token rewards (the sequence reward on the last completion
token, MiniLLM's log p_T - log p_S per token when the reward combiner asks for it, an
optional KL penalty to the reference), GAE with the critic's values, whitened advantages;
the learner's loss is the PPO-clip surrogate, the critic's the clipped value loss."""

from __future__ import annotations

import torch

from rlsys.algorithms.distill import truncated_token_rewards
from rlsys.algorithms.padding import pad_rows
from rlsys.algorithms.gae import gae, kl_penalized_rewards, rewards_at_last_token, whiten_tokens
from rlsys.algorithms.turns import masked_gae
from rlsys.algorithms.value import explained_variance
from rlsys.algorithms.settings import PPOSettings, RewardSettings
from rlsys.records import ScoredBatch, TrainItem


class PPO:
    loss = "ppo_clip"
    needs_critic = True

    def __init__(self, cfg: PPOSettings, reward: RewardSettings) -> None:
        self.cfg, self.reward = cfg, reward

    @property
    def needs_reference(self) -> bool:
        return self.cfg.kl_beta > 0 or self.cfg.kl_in_reward > 0

    @property
    def needs_teacher_tokens(self) -> bool:
        return self.reward.combiner == "minillm"

    def token_rewards(self, batch: ScoredBatch, mask: torch.Tensor) -> torch.Tensor:
        """[B, T] float64 rewards of every completion token."""
        # one past each row's last real token (a trajectory's last id is the model's own)
        lengths = (mask.long() * torch.arange(1, mask.shape[1] + 1)).amax(-1)
        rewards = rewards_at_last_token(torch.tensor(batch.rewards, dtype=torch.float64), lengths, mask.shape[1])
        if self.needs_teacher_tokens:
            if batch.teacher_logprobs is None:
                raise ValueError("reward.combiner=minillm needs the teacher's per-token log-probs")
            per_token = [truncated_token_rewards(t, s.sampling_logprobs)
                         for t, s in zip(batch.teacher_logprobs, batch.samples)]
            rewards = rewards + self.reward.minillm.coef * pad_rows(per_token, mask.shape[1], torch.float64)
        if self.cfg.kl_in_reward > 0:
            old, ref = (pad_rows(x, mask.shape[1], torch.float64) for x in (batch.old_logprobs, batch.ref_logprobs))
            rewards = kl_penalized_rewards(rewards, old, ref, mask, self.cfg.kl_in_reward)
        return rewards * mask

    def train_items(self, batch: ScoredBatch) -> tuple[list[TrainItem], dict[str, float]]:
        if batch.values is None or batch.old_logprobs is None:
            raise ValueError("PPO needs the critic's values and the learner's old log-probs of every sample")
        lengths = [len(s.completion_ids) for s in batch.samples]
        width = max(1, max(lengths))
        mask = torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]
        multi_turn = any(s.loss_mask is not None for s in batch.samples)
        if multi_turn:  # a trajectory's template and environment ids are not actions: no reward, value or step
            mask = mask & pad_rows([s.loss_mask if s.loss_mask is not None else [1] * n
                                    for s, n in zip(batch.samples, lengths)], width, torch.bool)
        values = pad_rows(batch.values, width, torch.float64) * mask
        rewards = self.token_rewards(batch, mask)
        advantages, returns = (masked_gae if multi_turn else gae)(rewards, values, mask, self.cfg.gamma, self.cfg.lam)
        raw_mean = float(advantages[mask].mean()) if mask.any() else 0.0
        if self.cfg.whiten_advantages:
            advantages = whiten_tokens(advantages, mask)
        items = []
        for i, s in enumerate(batch.samples):
            n = lengths[i]
            ref = batch.ref_logprobs[i] if batch.ref_logprobs is not None else None
            items.append(TrainItem(
                s.prompt_ids, s.completion_ids, 0.0, advantages[i, :n].tolist(), s.temperature, s.sampling_logprobs,
                batch.old_logprobs[i], ref, returns[i, :n].tolist(), batch.values[i], loss_mask=s.loss_mask))
        metrics = {
            "ppo/explained_variance": explained_variance(values, returns, mask),
            "ppo/value_mean": float(values[mask].mean()) if mask.any() else 0.0,
            "ppo/return_mean": float(returns[mask].mean()) if mask.any() else 0.0,
            "ppo/advantage_mean": raw_mean,
            "ppo/token_reward_sum": float(rewards.sum() / len(lengths)),
        }
        return items, metrics
