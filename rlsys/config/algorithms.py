"""The training algorithms (`algorithm: {type: grpo | ppo | dpo}`) and PPO's critic."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from rlsys.config.base import PlacementStrategy, Section

class PolicyLossConfig(Section):
    """The PPO-clip surrogate every policy-gradient algorithm here trains with."""

    clip_eps: float = Field(0.2, gt=0.0)
    """PPO-clip range: the ratio to the old policy is clipped to [1 - clip_eps, 1 + clip_eps];
    smaller: more cautious updates."""
    kl_beta: float = Field(0.1, ge=0.0)
    """Weight of the per-token KL to the reference in the loss (0: no reference model)."""
    kl_estimator: Literal["k1", "k3"] = "k3"
    """Per-token KL estimator, from d = log pi - log ref: `k1` is d (unbiased, can be
    negative), `k3` is exp(-d) - 1 + d (unbiased, never negative)."""
    kl_clamp: float = Field(10.0, gt=0.0, lt=1e12)
    """Per-token KL estimates are clamped to [-kl_clamp, kl_clamp] (gradient 0 beyond)."""
    loss_agg: Literal["token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm"] = "token_mean"
    """How per-token losses are averaged over a mini-batch: `token_mean` weighs every token alike,
    `seq_mean_token_mean` every sequence alike (the GRPO paper), `seq_mean_token_sum_norm`
    divides by N x rollout.max_new_tokens (Dr. GRPO). See rlsys.algorithms.losses."""
    old_policy: Literal["auto", "learner", "sampler"] = "auto"
    """The PPO ratio's denominator. `auto`: when the learner takes one optimiser step per batch
    (learner.epochs 1, mini-batch = the whole batch) the old policy *is* the current weights, so
    the training pass's own log-probs (detached, ratio exactly 1) serve and no separate pass
    runs; otherwise, and always for PPO (it reads them before training), a learner pass before the updates. `learner`: always that pass. `sampler`:
    vLLM's sampling log-probs (no pass; the learner/sampler mismatch is still logged)."""
    tis_cap: float | None = Field(None, gt=0.0)
    """Truncated importance sampling: each token's surrogate is weighted by
    min(pi_old / pi_sampler, tis_cap). Default: 2.0 when rollout.max_staleness > 0, else off;
    never applied with `old_policy: sampler` (the ratio is then to the sampler itself)."""


class GRPOConfig(PolicyLossConfig):
    """GRPO: group-relative advantages, PPO-clip surrogate, optional KL to a reference."""

    type: Literal["grpo"] = "grpo"
    """Selects GRPO (also what an `algorithm` section without `type` is)."""
    std_normalize: bool = True
    """Divide each group's centred rewards by the group's standard deviation (DeepSeekMath's
    GRPO); false: only subtract the group mean (Dr. GRPO)."""
    drop_uniform_groups: bool = False
    """Leave the groups whose rewards are all equal out of the learner's batch (topped up with
    some of them to whole mini-batches). Their advantages are 0, so without a KL term they add no
    gradient, only tokens to the `token_mean` denominator and time to the train phase; dropping
    them takes fewer, larger steps (about half the train time when half the groups are mixed).
    With `kl_beta` > 0 it also drops their KL gradient. When no group differs, one mini-batch
    trains (the KL step). Not with `reward.combiner: minillm`."""


class PPOConfig(PolicyLossConfig):
    """PPO with a critic: the sequence reward on the last completion token, GAE over the
    completion, whitened advantages, an optional per-token KL penalty in the reward."""

    type: Literal["ppo"] = "ppo"
    """Selects PPO; its value model is configured in the `critic` section."""
    kl_beta: float = Field(0.0, ge=0.0)
    """Weight of the per-token KL to the reference in the loss; 0 here by default (a KL penalty
    in the reward instead: `kl_in_reward`). Either above 0 needs the reference's log-probs."""
    gamma: float = Field(1.0, ge=0.0, le=1.0)
    """Discount per completion token (1: the reward counts the same for every token)."""
    lam: float = Field(0.95, ge=0.0, le=1.0)
    """GAE's lambda: 1 gives Monte-Carlo returns minus the value, 0 the one-step TD error."""
    kl_in_reward: float = Field(0.0, ge=0.0)
    """Coefficient of the per-token penalty -(log pi - log ref) added to the reward (needs a reference)."""
    whiten_advantages: bool = True
    """Standardise the GAE advantages over every completion token of the batch (mean 0, std 1)
    before the policy loss."""


class DPOConfig(Section):
    """Direct preference optimisation on preference pairs (offline), or on pairs the rollout
    workers sample and the rewards rank, round after round (`online`)."""

    type: Literal["dpo"] = "dpo"
    """Selects DPO: pairs from `data.preferences`, or sampled each round with `online`."""
    loss: Literal["sigmoid", "ipo", "hinge"] = "sigmoid"
    """`sigmoid`: DPO's -log sigmoid(beta h); `ipo`: IPO's (h - 1/(2 beta))^2 on per-token mean
    log-probs; `hinge`: SLiC's max(0, 1 - beta h). h: the chosen minus the rejected log-ratio to the reference."""
    beta: float = Field(0.1, gt=0.0)
    """Scale of the implicit reward beta x (log pi - log ref): larger keeps the policy closer to
    the reference."""
    label_smoothing: float = Field(0.0, ge=0.0, lt=0.5)
    """Assumed share of flipped labels (conservative DPO; sigmoid loss only)."""
    nll_coef: float = Field(0.0, ge=0.0)
    """Weight of the chosen answers' per-token negative log-likelihood added to the loss
    (RPO); 0: plain DPO."""
    epochs: int = Field(1, ge=1)
    """Passes over the training pairs (online: over each round's pairs)."""
    eval_every_steps: int = Field(0, ge=0)
    """Held-out preference metrics every N optimiser steps (0: before and after only)."""
    online: bool = False
    """Each of run.iterations rounds samples rollout.group_size answers to
    rollout.prompts_per_iteration prompts of `data`, pairs the best and worst of each group,
    trains on them and pushes the new weights (the adapter, with LoRA) to the engines."""
    pair_min_gap: float = Field(0.0, ge=0.0)
    """Online pairs and `rlsys make-pairs`: the best and the worst answer of a group make a
    pair only when their rewards differ by more than this (e.g. 0.5 with correctness plus a
    small brevity term: right-and-short over wrong-and-long, never two wrong answers)."""
    task_eval: bool = True
    """Greedy task accuracy on `data`'s held-out tasks before and after (off for preference
    data that has no task)."""

    @model_validator(mode="after")
    def _smoothing_needs_sigmoid(self) -> "DPOConfig":
        if self.label_smoothing and self.loss != "sigmoid":
            raise ValueError(f"algorithm.label_smoothing applies to the sigmoid loss only, not {self.loss!r}")
        return self


AlgorithmConfig = Annotated[GRPOConfig | PPOConfig | DPOConfig, Field(discriminator="type")]


class CriticConfig(Section):
    """PPO's critic: its own Ray actor group and DeepSpeed engine. Unset batch settings take
    the learner's."""

    path: str | None = None
    """A causal LM (or a critic saved by a run) to start from; None: the policy's model."""
    num_ranks: int = Field(1, ge=1)
    """DeepSpeed ranks (Ray actors) that train the critic; each mini-batch is split over them."""
    num_cpus: float = Field(0.5, ge=0.0)
    """CPUs Ray reserves for each critic rank."""
    num_gpus: float = Field(0.0, ge=0.0)
    """GPUs Ray reserves for each critic rank (0: the rank trains on the CPU)."""
    placement: PlacementStrategy = "PACK"
    """How the critic ranks' placement group lays them out over nodes (as `learner.placement`)."""
    resources: dict[str, float] = Field(default_factory=dict)
    """Custom resources each critic rank asks for (as `learner.resources`), e.g. {critic_node: 1}."""
    lr: float = Field(5e-5, gt=0.0)
    """The critic's AdamW learning rate: constant after `warmup_steps` (no decay, unlike the learner's)."""
    head_lr: float | None = Field(None, gt=0.0)
    """The value head's learning rate (None: `lr`). A new head starts at 0 and must learn the
    returns' scale and a read-out of the trunk's features; a rate 10-100x `lr` lets it do that in
    the first iterations without moving the trunk faster."""
    warmup_steps: int = Field(0, ge=0)
    """Learning-rate warmup in optimiser steps."""
    warmup_iterations: int = Field(0, ge=0)
    """The first N iterations train only the critic (the policy and the engines' weights stay)."""
    value_clip: float | None = Field(0.2, gt=0.0)
    """Values move at most this far from those the advantages used (None: no clipping)."""
    zero_stage: Literal[0, 1, 2, 3] = 2
    """DeepSpeed ZeRO stage of the critic's engine (as `learner.zero_stage`)."""
    grad_clip: float = Field(1.0, gt=0.0)
    """Largest global gradient norm of a critic step; larger gradients are scaled down to it."""
    mini_batch_size: int | None = Field(None, ge=1)
    """Sequences per critic optimiser step, across its ranks (None: learner.mini_batch_size)."""
    micro_batch_size: int | None = Field(None, ge=1)
    """Sequences per forward/backward on one critic rank (None: learner.micro_batch_size)."""
    epochs: int | None = Field(None, ge=1)
    """Passes of the critic over each iteration's batch (None: learner.epochs)."""
    torch_threads: int | None = None
    """CPU threads per critic rank; None: every core (not learner.torch_threads)."""
