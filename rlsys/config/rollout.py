"""The `rollout` section (the vLLM samplers) and the `sync` section (weights back to them)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from rlsys.config.base import Section

class AutoscaleConfig(Section):
    """Rollout workers added or removed by the run itself after each iteration, from the phase
    times it measured (rlsys.distributed.autoscale_rule says how), between `min_workers` and
    `max_workers`. `rollout.num_workers` is the count it starts with."""

    min_workers: int = Field(1, ge=1)
    """Fewest rollout workers."""
    max_workers: int = Field(4, ge=1)
    """Most rollout workers; a scale-up past what the cluster offers waits `resource_timeout_s`
    for a node (Ray's autoscaler is asked for one), then is abandoned and logged."""
    up_gain: float = Field(0.10, gt=0.0, lt=1.0)
    """Add a worker when that is predicted to shorten an iteration by at least this fraction."""
    down_cost: float = Field(0.03, ge=0.0, lt=1.0)
    """Remove a worker when that is predicted to lengthen an iteration by at most this fraction
    (below up_gain, so a size is not flipped back and forth)."""
    window: int = Field(2, ge=1)
    """Iterations measured at a size before it is judged (their mean)."""
    cooldown: int = Field(1, ge=0)
    """Iterations after a change that are not judged (the first pays for the new worker's start)."""
    resource_timeout_s: float = Field(60.0, gt=0.0)
    """How long a scale-up waits for the resources of one more worker before it is abandoned."""

    @model_validator(mode="after")
    def _ordered(self) -> "AutoscaleConfig":
        if self.min_workers > self.max_workers:
            raise ValueError(f"rollout.autoscale.min_workers ({self.min_workers}) is above max_workers "
                             f"({self.max_workers})")
        if self.down_cost >= self.up_gain:
            raise ValueError(f"rollout.autoscale.down_cost ({self.down_cost}) must be below up_gain ({self.up_gain}), "
                             "or a worker added is removed again at once")
        return self


class RolloutConfig(Section):
    """The rollout workers: vLLM engines that sample each iteration's completions, how many and
    how they sample."""

    num_workers: int = Field(1, ge=1)
    """vLLM engines (Ray actors) that generate; each iteration's prompts are split into one
    contiguous chunk per worker."""
    prompts_per_iteration: int = Field(16, ge=1)
    """Prompts drawn from the training tasks each iteration (online DPO: each round)."""
    group_size: int = Field(8, ge=1)
    """Completions sampled per prompt; a batch is prompts_per_iteration x group_size samples
    (GRPO needs at least 2)."""
    max_new_tokens: int = Field(128, ge=1)
    """Longest completion in tokens; must be below model.max_model_len."""
    temperature: float = Field(1.0, ge=0.0)
    """Sampling temperature (0: greedy); the learner scores each completion at the temperature
    it was sampled with."""
    temperature_range: tuple[float, float] | None = None
    """Spread temperatures linearly across each group, e.g. [0.7, 1.3]."""
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    """Nucleus sampling: keep the most likely tokens up to this mass (1: all). The learner
    applies the same filter (vLLM's order and ties) to its log-probs, so ratios, TIS weights
    and the mismatch metrics compare like with like."""
    top_k: int = Field(0, ge=0)
    """Keep only the k most likely tokens when sampling (0: all); applied before `top_p`, by
    vLLM and by the learner alike."""
    kv_cache_gib: float = Field(1.0, gt=0.0)
    """KV-cache memory each vLLM engine reserves, in GiB; more lets it run more sequences at once."""
    kv_block_size: int | None = Field(None, ge=1)
    """Tokens per KV-cache block of each rollout engine; None: 32 on a CPU (vLLM-CPU's default
    of 128 makes a short prompt cost a whole block: 32 cut the demo's generation by a third),
    vLLM's own default on a GPU. vLLM-CPU accepts multiples of 32."""
    max_num_seqs: int | None = Field(None, ge=1)
    """Sequences each rollout engine runs at once (vLLM's max_num_seqs); the rest of its share
    of a batch waits for a free slot. None: vLLM's default (256 on a CPU or GPU)."""
    enforce_eager: bool = True
    """Run vLLM in eager mode, without CUDA graphs (a faster start, less memory); false lets
    vLLM capture CUDA graphs on GPUs."""
    tensor_parallel_size: int = Field(1, ge=1)
    """Devices one rollout engine spans (vLLM tensor parallel), for a student that does not fit
    one; each worker then needs `num_gpus` >= this on GPUs. Every shard receives each weight
    sync and is checked."""
    engine_process: Literal["auto", "actor", "separate"] = "auto"
    """Where each engine's scheduler and model runner run: `actor`, inside the rollout worker's
    own process (on a CPU a 4x faster start and 1.5x faster generation, measured); `separate`,
    in vLLM's processes of their own (vLLM's default; a GPU overlaps scheduling with the
    device). auto: actor on a CPU with tensor_parallel_size 1, else separate.
    VLLM_ENABLE_V1_MULTIPROCESSING, where set, wins over auto."""
    num_cpus: float = Field(0.5, ge=0.0)
    """CPUs Ray reserves for each rollout worker."""
    num_gpus: float = Field(0.0, ge=0.0)
    """GPUs Ray reserves for each rollout worker (a fraction shares a GPU; 0: none)."""
    resources: dict[str, float] = Field(default_factory=dict)
    """Ray custom resources (or node labels turned into resources) each rollout worker asks for, e.g.
    `{rollout_node: 1}`: the rollout workers run only on nodes that offer them (`ray start
    --resources='{"rollout_node": 4}'`). Empty: any node with the CPUs/GPUs asked for."""
    scheduling: Literal["default", "spread"] = "default"
    """spread: put the rollout workers on as many nodes as possible (Ray's SPREAD); default:
    Ray packs them where resources are free."""
    max_staleness: int = Field(0, ge=0)
    """Asynchronous rollouts: generation of the next batches overlaps training, and the learner
    trains on samples at most this many weight versions old (0: the synchronous loop)."""
    max_restarts: int = Field(3, ge=0)
    """How often each rollout worker slot may be replaced after its worker died; its unfinished
    prompts are re-run by the replacement."""
    autoscale: AutoscaleConfig | None = None
    """Let the run add and remove rollout workers itself (None: `num_workers` throughout, or
    what `rlsys scale` asks for)."""

    @model_validator(mode="after")
    def _start_inside_autoscale(self) -> "RolloutConfig":
        a = self.autoscale
        if a is not None and not a.min_workers <= self.num_workers <= a.max_workers:
            raise ValueError(f"rollout.num_workers ({self.num_workers}) must lie within rollout.autoscale's "
                             f"min_workers..max_workers ({a.min_workers}..{a.max_workers})")
        return self


class SyncConfig(Section):
    """The weight sync: how the learner's new weights reach every engine after each update."""

    backend: Literal["auto", "gloo", "nccl"] = "auto"
    """auto: NCCL when the learner and the engines hold whole GPUs each, else gloo."""
    bucket_mb: float = Field(64.0, gt=0.0)
    """Tensors are sent in buckets of at most this many MiB (a larger tensor alone), one broadcast each."""
    timeout_s: float = Field(120.0, gt=0.0)
    """Bound of one collective (one bucket's broadcast), and the base of the whole sync's bound."""
    per_bucket_timeout_s: float = Field(30.0, gt=0.0)
    """The whole sync may take timeout_s + per_bucket_timeout_s x buckets."""
    probes: int = Field(3, ge=0)
    """Tensors whose engine copy is checksummed against the learner's after every sync
    (rotating, so every tensor is checked over the iterations)."""
    staged: bool = True
    """Engines receive the whole sync before loading it, so a sync cut short by a worker that
    died leaves the others' weights whole (costs one copy of the weights in engine memory;
    with false, an engine whose receive was cut short is replaced)."""
