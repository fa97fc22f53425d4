"""The `learner` section: the DeepSpeed ranks that train the policy (the critic's default too)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from rlsys.config.base import PlacementStrategy, Section

class LearnerConfig(Section):
    """The DeepSpeed ranks that train the policy: AdamW with linear warmup and cosine decay,
    gradient clipping, ZeRO, and the batch split into mini- and micro-batches."""

    num_ranks: int = Field(1, ge=1)
    """DeepSpeed ranks (Ray actors) that train the policy; each mini-batch is split evenly over them."""
    zero_stage: Literal[0, 1, 2, 3] = 2
    """DeepSpeed ZeRO stage: 0 off; 1 shards the optimiser states over the ranks, 2 also the
    gradients, 3 also the weights (less memory per rank with several ranks)."""
    lr: float = Field(1e-5, gt=0.0)
    """Peak AdamW learning rate, reached after `warmup_steps`, then decayed by a cosine."""
    min_lr_ratio: float = Field(0.1, ge=0.0, le=1.0)
    """Where the cosine decay ends, as a share of `lr`, at the end of the schedule
    (RL: `run.schedule_iterations`); 1: constant after warmup."""
    warmup_steps: int = Field(0, ge=0)
    """Linear learning-rate warmup over this many optimiser steps (0: none)."""
    weight_decay: float = Field(0.0, ge=0.0)
    """AdamW's decoupled weight decay."""
    grad_clip: float = Field(1.0, gt=0.0)
    """Largest global gradient norm of a step; larger gradients are scaled down to it."""
    mini_batch_size: int = Field(8, ge=1)
    """Sequences per optimizer step, across all ranks."""
    micro_batch_size: int = Field(8, ge=1)
    """Sequences per forward/backward on one rank."""
    epochs: int = Field(1, ge=1)
    """Passes over each iteration's batch (DPO: `algorithm.epochs`); optimiser steps per
    iteration: epochs x batch / mini_batch_size."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass instead of keeping them: less memory, more compute."""
    logprob_chunk_tokens: int = Field(1024, ge=1)
    """Tokens whose vocabulary logits are computed at once (the output projection runs in chunks);
    lower it to save memory with a large vocabulary."""
    shared_prefix: bool = True
    """Run each distinct prompt of a micro-batch through the model once and reuse its KV for
    every completion of it (exact, gradients included; off where it would not be: sliding-window
    or recurrent models, and gradient checkpointing with an attention that takes no custom mask)."""
    num_cpus: float = Field(0.5, ge=0.0)
    """CPUs Ray reserves for each learner rank."""
    num_gpus: float = Field(0.0, ge=0.0)
    """GPUs Ray reserves for each learner rank (0: the rank trains on the CPU)."""
    resources: dict[str, float] = Field(default_factory=dict)
    """Ray custom resources (or node labels turned into resources) each learner rank asks for, e.g.
    `{learner_node: 1}`: the learner ranks run only on nodes that offer them (`ray start
    --resources='{"learner_node": 4}'`). Empty: any node with the CPUs/GPUs asked for."""
    placement: PlacementStrategy = "PACK"
    """How the ranks' placement group lays them out over nodes (Ray's strategies): PACK keeps
    them together where it can, STRICT_PACK on one node, (STRICT_)SPREAD over several."""
    torch_threads: int | None = None
    """CPU threads per learner rank; default: every core (phases do not overlap)."""
