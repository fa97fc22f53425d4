"""The `learner` section: the DeepSpeed ranks that train the policy (the critic's default too)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from rlsys.config.base import PlacementStrategy, Section

class LearnerConfig(Section):
    num_ranks: int = Field(1, ge=1)
    zero_stage: Literal[0, 1, 2, 3] = 2
    lr: float = Field(1e-5, gt=0.0)
    min_lr_ratio: float = Field(0.1, ge=0.0, le=1.0)
    warmup_steps: int = Field(0, ge=0)
    weight_decay: float = Field(0.0, ge=0.0)
    grad_clip: float = Field(1.0, gt=0.0)
    mini_batch_size: int = Field(8, ge=1)
    """Sequences per optimizer step, across all ranks."""
    micro_batch_size: int = Field(8, ge=1)
    """Sequences per forward/backward on one rank."""
    epochs: int = Field(1, ge=1)
    gradient_checkpointing: bool = False
    logprob_chunk_tokens: int = Field(1024, ge=1)
    shared_prefix: bool = True
    """Run each distinct prompt of a micro-batch through the model once and reuse its KV for
    every completion of it (exact, gradients included; off for sliding-window models and under
    gradient checkpointing, where it is not)."""
    num_cpus: float = Field(0.5, ge=0.0)
    num_gpus: float = Field(0.0, ge=0.0)
    resources: dict[str, float] = Field(default_factory=dict)
    """Ray custom resources (or node labels turned into resources) each learner rank asks for, e.g.
    `{learner_node: 1}`: the learner ranks run only on nodes that offer them (`ray start
    --resources='{"learner_node": 4}'`). Empty: any node with the CPUs/GPUs asked for."""
    placement: PlacementStrategy = "PACK"
    """How the ranks' placement group lays them out over nodes (Ray's strategies): PACK keeps
    them together where it can, STRICT_PACK on one node, (STRICT_)SPREAD over several."""
    torch_threads: int | None = None
    """CPU threads per learner rank; default: every core (phases do not overlap)."""
