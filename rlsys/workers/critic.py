"""Critic: one DeepSpeed data-parallel rank of PPO's value model, with its own process group,
optimiser and learning rate, scaled independently of the policy learner (`critic.num_ranks`)."""

from __future__ import annotations

import time

import torch

from rlsys.config import LearnerConfig
from rlsys.training.critic import ValueStep, load_value_model, value_head
from rlsys.training.engine import TrainingEngine, init_process
from rlsys.records import TrainItem


class Critic:
    def __init__(self, model_path: str, cfg: LearnerConfig, value_clip: float | None, dtype: str, rank: int,
                 world_size: int, master_addr: str, master_port: int, total_optimizer_steps: int,
                 seed: int = 0, head_lr: float | None = None) -> None:
        """`cfg` is the critic's effective learner settings (its lr, ranks and batch sizes);
        `head_lr` the value head's own rate (None: cfg.lr)."""
        from transformers import AutoTokenizer

        self.rank = rank
        cuda = torch.cuda.is_available() and cfg.num_gpus > 0
        device = init_process(rank, world_size, master_addr, master_port, cuda, cfg.torch_threads, seed)
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        model = load_value_model(model_path)
        lr_of = {value_head(model): head_lr} if head_lr else None
        self.engine = TrainingEngine(model, cfg, world_size, dtype, total_optimizer_steps, device, lr_of)
        self.step = ValueStep(self.engine, pad_id, rank, seed, value_clip)

    def ping(self) -> bool:
        return True

    def values(self, items: list) -> list[list[float]]:
        """Per-token values of each item's completion."""
        return self.step.values(items)

    def train_on_batch(self, items: list[TrainItem]) -> dict[str, float]:
        t0 = time.perf_counter()
        stats = self.step.train(items)
        return {**stats, "time/critic_train": time.perf_counter() - t0}

    def save_checkpoint(self, directory: str) -> dict:
        return self.engine.save_state(directory, self.rank, self.step.state_dict())

    def load_checkpoint(self, directory: str) -> dict:
        extra, loaded = self.engine.load_state(directory, self.rank)
        self.step.load_state_dict(extra)
        return loaded

    def save(self, path: str, dtype: str) -> str:
        return self.engine.save_pretrained(path, dtype, self.rank, self.tokenizer)
