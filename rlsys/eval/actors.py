"""`rlsys eval`'s actors: vLLM rollout workers for one model (its adapter on every request) and
the HF scorer of perplexity tasks. They are wrapped here, beside the evaluation that uses them,
with the rollout pool's own restart and sharding."""

from __future__ import annotations

import json
from pathlib import Path

import ray

from rlsys.distributed.rollout_pool import RolloutPool
from rlsys.eval.scorers import DocumentScorer
from rlsys.workers.rollout import RolloutWorker


def eval_rollout_pool(model, workers: int, dtype: str, max_model_len: int, num_gpus: float,
                      timeout_s: float) -> RolloutPool:
    """vLLM workers for `rlsys eval` of `model` (an `EvalModel`; its adapter on every request)."""
    rank = json.loads((Path(model.adapter) / "adapter_config.json").read_text())["r"] if model.adapter else None

    def start(slot: int):
        remote = ray.remote(num_cpus=0.5, num_gpus=num_gpus, max_restarts=0)(RolloutWorker)
        return remote.remote(model.path, dtype=dtype, max_model_len=max_model_len, seed=slot, name=f"rollout-{slot}",
                             lora_rank=rank, adapter_path=model.adapter)

    return RolloutPool(start, workers, 1, timeout_s)


def start_document_scorer(model, dtype: str, num_gpus: float):
    """The HF scorer of `rlsys eval`'s perplexity tasks, as an actor."""
    return ray.remote(num_cpus=1, num_gpus=num_gpus, max_restarts=0)(DocumentScorer).remote(
        model.path, model.adapter, dtype)
